"""docker/compose.yaml and docker/Dockerfile: what `docker compose up` relies on, checked here.

No Docker engine is needed. Every machine checks the file's structure: the services and their
health-gated start order, the one image every cryotune role runs, no secret in the file, every
variable documented in docker/.env.example, where ports bind, and that each service's command
parses with the real parser of its program (cryotune, mlflow, ray, gpu-claim), so a mistyped flag
fails here and not in a container on a cluster. Where a Compose v2 client exists (`docker
compose`), it validates the file too, resolves the variables as this file's reading of them does,
and refuses to start without a secret, naming docker/.env.

``interpolate`` below is the tests' reading of Compose's variable syntax, used to see the file as
a user's .env makes it; it is checked against the real client where one exists.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cryotune.cli import build_parser, cmd_serve

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
INIT_SQL = DOCKER / "postgres-init.sql"

SERVICES = {"postgres", "mlflow", "ray-head", "ray-worker", "api"}
STARTS_AFTER = {
    "postgres": set(),
    "mlflow": {"postgres"},
    "ray-head": {"postgres", "mlflow"},
    "ray-worker": {"ray-head"},
    "api": {"mlflow"},
}
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-1",
    "CRYOTUNE_API_TOKEN": "api-token-1",
    "RAY_AUTH_TOKEN": "ray-token-1",
}

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)
_DOCUMENTED = re.compile(r"^#?\s*(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def references(text: str) -> dict[str, set[str]]:
    """Each variable the text names, with the operators it is used with ('' for plain)."""
    found: dict[str, set[str]] = {}
    for match in _REFERENCE.finditer(text):
        name = match["name"] or match["bare"]
        if name:
            found.setdefault(name, set()).add(match["op"] or "")
    return found


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of every string in ``value`` ($$, ${X}, ${X:-d}, ${X:?e})."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        given = env.get(name, "")
        if match["op"] in (":?", "?") and not given:
            raise AssertionError(f"${{{name}}} is required: {match['arg']}")
        if match["op"] in (":-", "-") and not given:
            return match["arg"]
        return given

    return _REFERENCE.sub(replace, value)


def documented() -> dict[str, tuple[str, bool]]:
    """Variables of .env.example: name -> (example value, set on an uncommented line)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _DOCUMENTED.match(line.strip())
        if match:
            found[match["name"]] = (match["value"], not line.startswith("#"))
    return found


def example_env() -> dict[str, str]:
    """The .env a user writes from the example: its values, secrets filled in."""
    env = {name: value for name, (value, active) in documented().items() if active}
    return {**env, **SECRETS}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(raw) -> dict:
    return interpolate(raw["services"], example_env())


def compose_client() -> list[str] | None:
    """A Compose v2 client (the `docker compose` the guide uses), or None. Compose v1 is left
    out: it predates the Compose Specification this file is written in (top-level ``name``)."""
    for client in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(client[0]) is None:
            continue
        version = subprocess.run(
            [*client, "version", "--short"], capture_output=True, text=True, timeout=60
        )
        if version.returncode == 0 and re.match(r"v?([2-9]|\d\d)\.", version.stdout.strip()):
            return client
    return None


def compose_config(client: list[str], env: dict[str, str], tmp_path: Path, *flags: str):
    """`docker compose config FLAGS` of compose.yaml with ``env`` as its .env file; the
    variables of this process are kept out so that only that file speaks."""
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if k not in documented()}
    return subprocess.run(
        [*client, "--env-file", str(env_file), "-f", str(COMPOSE), "config", *flags],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
    )


def test_compose_file_is_valid_compose(raw, services, tmp_path):
    """The five services of project cryotune; where a client exists, `docker compose config`
    accepts the file and resolves every service's image, command and environment as
    ``services`` here does (so the other tests read what compose will run)."""
    assert set(raw["services"]) == SERVICES
    assert "name" not in raw  # docker-compose 1.29 (Debian's) rejects a top-level name
    client = compose_client()
    if client is not None:
        result = compose_config(client, example_env(), tmp_path, "--format", "json")
        assert result.returncode == 0, result.stderr
        resolved = json.loads(result.stdout)["services"]
        assert set(resolved) == SERVICES
        for name, service in services.items():
            assert resolved[name].get("command") == service.get("command"), name
            assert resolved[name].get("environment", {}) == service.get("environment", {}), name
            assert resolved[name]["image"] == service["image"], name


def test_a_missing_secret_is_required_with_a_message_naming_the_env_file(tmp_path):
    """Each secret is a required variable whose message tells where to set it; a client refuses
    to start the stack without it and prints that message."""
    required = {
        match["name"]: match["arg"]
        for match in _REFERENCE.finditer(COMPOSE.read_text())
        if match["op"] == ":?"
    }
    assert set(SECRETS) <= set(required)
    for name, message in required.items():
        assert message == f"set {name} in docker/.env", name
    client = compose_client()
    if client is not None:
        env = {k: v for k, v in example_env().items() if k != "POSTGRES_PASSWORD"}
        result = compose_config(client, env, tmp_path, "--quiet")
        assert result.returncode != 0
        assert "set POSTGRES_PASSWORD in docker/.env" in result.stderr, result.stderr


def test_every_cryotune_role_runs_one_image_that_a_user_can_retag(raw):
    """MLflow, the Ray head, the Ray workers and the API run one image (a head and workers of
    other builds would not join one Ray cluster), tagged cryotune:latest unless CRYOTUNE_IMAGE
    names another, e.g. a registry path the workers pull."""
    roles = SERVICES - {"postgres"}
    default = interpolate(raw["services"], example_env())
    assert {default[name]["image"] for name in roles} == {"cryotune:latest"}
    tagged = interpolate(raw["services"], {**example_env(), "CRYOTUNE_IMAGE": "reg.io/ct:7"})
    assert {tagged[name]["image"] for name in roles} == {"reg.io/ct:7"}
    assert default["postgres"]["image"].startswith("postgres:")


def test_every_service_has_a_healthcheck(services):
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check.get("start_period"), f"{name}: no start_period for its first start"


def test_services_start_only_after_their_dependencies_are_healthy(services):
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert set(depends_on) == STARTS_AFTER[name], name
        for dependency, condition in depends_on.items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"


def test_the_file_holds_no_secret_only_references_to_env(raw):
    text = COMPOSE.read_text()
    for match in re.finditer(r"://[^/\s:@]+:(?P<password>[^@\s]+)@", text):
        assert match["password"].startswith("${"), f"literal password in {match[0]}"
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key}"
    for secret in SECRETS.values():
        assert secret not in text


def test_every_variable_is_documented_in_the_env_example():
    used = references(COMPOSE.read_text())
    docs = documented()
    assert set(used) == set(docs), "compose.yaml and docker/.env.example name other variables"
    for name, operators in used.items():
        required = ":?" in operators
        assert docs[name][1] == required, (
            f"{name}: {'required' if required else 'optional'} in compose.yaml, so "
            f"{'uncommented' if required else 'commented with its default'} in .env.example"
        )
        assert operators <= {":?", ":-"}, f"{name}: say ${{{name}:?...}} or ${{{name}:-default}}"
    for name, (value, active) in docs.items():
        if not active:
            defaults = re.findall(rf"\$\{{{name}:-([^}}]*)\}}", COMPOSE.read_text())
            assert defaults == [value] * len(defaults), f"{name}: .env.example shows {value}"


def _published(service: dict) -> list[tuple[str, int, int]]:
    rows = []
    for port in service.get("ports", []):
        host_ip, host_port, container_port = port.rsplit(":", 2)
        rows.append((host_ip, int(host_port), int(container_port)))
    return rows


def test_ports_bind_where_intended(services):
    assert _published(services["postgres"]) == []
    assert _published(services["ray-worker"]) == [], "replicas of a scaled worker cannot share"
    assert _published(services["mlflow"]) == [("127.0.0.1", 5000, 5000)]
    assert _published(services["ray-head"]) == [("127.0.0.1", 8265, 8265)]
    assert _published(services["api"]) == [("0.0.0.0", 8000, 8000)]


def _probe_port(service: dict) -> int:
    return int(
        re.search(r"http://127\.0\.0\.1:(\d+)/", " ".join(service["healthcheck"]["test"]))[1]
    )


def test_api_command_is_cryotune_serve_on_the_tracking_server(services):
    command = services["api"]["command"]
    assert command[0] == "cryotune"
    args = build_parser().parse_args(command[1:])
    assert args.func is cmd_serve
    assert (args.host, args.port) == ("0.0.0.0", 8000)
    assert args.tracking_uri == "http://mlflow:5000"
    assert _probe_port(services["api"]) == args.port
    assert "CRYOTUNE_API_TOKEN" in services["api"]["environment"]


@pytest.fixture(scope="module")
def mlflow_server_params(services) -> dict:
    from mlflow.cli import server

    command = services["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    return server.make_context("server", command[2:]).params


def test_mlflow_server_is_lean_on_postgres_and_serves_artifacts(services, mlflow_server_params):
    mlflow = services["mlflow"]
    params = mlflow_server_params
    assert (params["host"], params["port"], params["workers"]) == ("0.0.0.0", 5000, "1")
    assert params["serve_artifacts"] and params["artifacts_destination"] == "/mlartifacts"
    assert "mlartifacts:/mlartifacts" in mlflow["volumes"]
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    backend = mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert backend == f"postgresql://cryotune:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/mlflow"
    assert _probe_port(mlflow) == params["port"]


def test_mlflow_answers_the_host_name_the_cluster_reaches_it_by(services, mlflow_server_params):
    """MLflow refuses Host headers it does not know: trials and the API send mlflow:5000."""
    allowed = mlflow_server_params["allowed_hosts"].split(",")
    for host in ("mlflow:5000", "localhost:5000", "127.0.0.1:5000"):
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host
    for service in ("ray-head", "ray-worker"):
        assert services[service]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_postgres_creates_the_databases_the_stores_use(services):
    created = set(re.findall(r"CREATE DATABASE (\w+);", INIT_SQL.read_text()))
    assert created == {"mlflow", "optuna"}
    postgres = services["postgres"]
    assert (
        "./postgres-init.sql:/docker-entrypoint-initdb.d/10-cryotune.sql:ro"
        in (postgres["volumes"])
    )
    optuna = services["ray-head"]["environment"]["CRYOTUNE_OPTUNA_STORAGE"]
    assert optuna == f"postgresql://cryotune:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/optuna"
    assert postgres["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def _ray_start(command: list[str]) -> dict:
    from ray.scripts.scripts import start

    assert command[:2] == ["ray", "start"]
    return start.make_context("start", command[2:]).params


def test_ray_head_blocks_with_its_dashboard_and_leaves_gpus_to_workers(services):
    head = services["ray-head"]
    params = _ray_start(head["command"])
    assert params["head"] and params["block"] and params["num_gpus"] == 0
    assert params["dashboard_host"] == "0.0.0.0"
    assert _probe_port(head) == params["dashboard_port"] == 8265
    assert head["shm_size"]


def _gpu_claim():
    spec = importlib.util.spec_from_file_location("gpu_claim", DOCKER / "gpu_claim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_worker_is_a_scalable_gpu_node_joining_the_head(services):
    worker = services["ray-worker"]
    assert worker["command"][0] == "gpu-claim"
    claim = _gpu_claim().parse(worker["command"][1:])
    assert claim.each == "all"
    assert f"gpu-claims:{claim.claims}" in worker["volumes"]
    params = _ray_start(claim.command)
    head = _ray_start(services["ray-head"]["command"])
    assert params["address"] == f"ray-head:{head['port']}" and params["block"]
    assert not params["head"]
    assert _probe_port(worker) == params["dashboard_agent_listen_port"]
    assert "container_name" not in worker
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert worker["shm_size"]


def _dockerfile_env() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?<!\\)\n", DOCKERFILE.read_text(), re.S | re.M)[1]
    return dict(re.findall(r"(\w+)=(\S+)", block))


def test_head_and_workers_mount_data_weights_runs_and_cache_where_cryotune_looks(services):
    env = _dockerfile_env()
    expected = {
        env["CRYOTUNE_DATA"]: "/srv/cryotune/data",
        env["CRYOTUNE_WEIGHTS"]: "/srv/cryotune/weights",
        "/runs": "/srv/cryotune/runs",
        env["CRYOTUNE_CACHE"]: "cache",
    }
    for name in ("ray-head", "ray-worker"):
        mounts = {v.split(":")[1]: v.split(":") for v in services[name]["volumes"]}
        for target, source in expected.items():
            assert mounts[target][0] == source, f"{name}: {target}"
        assert mounts[env["CRYOTUNE_DATA"]][2:] == ["ro"]
        assert mounts[env["CRYOTUNE_WEIGHTS"]][2:] == ["ro"]
    assert services["ray-head"]["environment"]["CRYOTUNE_STORAGE"].startswith("/runs/")


def test_named_volumes_are_declared(raw):
    named = {
        volume.split(":")[0]
        for service in raw["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("$", ".", "/"))
    }
    assert named == set(raw["volumes"])


def test_every_service_of_the_image_builds_it_from_the_repository(raw):
    for name, service in raw["services"].items():
        if name == "postgres":
            continue
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert (COMPOSE.parent / service["build"]["context"]).resolve() == REPO


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!")):
            ignored = not negated
    return ignored


def test_build_context_sends_what_the_dockerfile_copies_and_gpu_claim_is_on_path():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = re.findall(r"^COPY (.+) (\S+)$", DOCKERFILE.read_text(), re.M)
    sources = [source for sources, _ in copies for source in sources.split()]
    assert {"pyproject.toml", "README.md", "cryotune", "sweeps"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is left out of the build context"
    assert _ignored(".venv", patterns) and _ignored("cryotune-runs", patterns)
    assert ("docker/gpu_claim.py", "/usr/local/bin/gpu-claim") in copies


def _guide_commands() -> list[list[str]]:
    """The shell lines of the code blocks in docs/cluster.md and the README's cluster section."""
    readme = (REPO / "README.md").read_text()
    texts = [
        (REPO / "docs" / "cluster.md").read_text(),
        readme[readme.index("## Run on a cluster") :],
    ]
    lines = []
    for text in texts:
        for block in re.findall(r"^```\n(.*?)^```", text, re.S | re.M):
            lines += [shlex.split(line, comments=True) for line in block.splitlines()]
    return [line for line in lines if line]


def test_the_cluster_guide_runs_real_services_commands_and_flags():
    """Every cryotune and ray command of the guide parses; `exec` names a compose service."""
    parsed = {"cryotune": 0, "ray start": 0}
    for line in _guide_commands():
        if line[:3] == ["docker", "compose", "exec"]:
            service = [word for word in line[3:] if not word.startswith("-")][0]
            assert service in SERVICES, " ".join(line)
        if "cryotune" in line:
            args = line[line.index("cryotune") + 1 :]
            assert build_parser().parse_args(args).func, " ".join(line)
            parsed["cryotune"] += 1
        if "ray" in line and line[line.index("ray") + 1] == "start":
            _ray_start(line[line.index("ray") :])
            parsed["ray start"] += 1
    assert parsed["cryotune"] >= 8 and parsed["ray start"] == 2, parsed
    sweeps = [line for line in _guide_commands() if "sweep" in line and "cryotune" in line]
    flags = {word for line in sweeps for word in line}
    assert {"--address", "--storage", "--optuna-storage", "--tracking-uri"} <= flags

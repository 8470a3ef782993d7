"""`cryotune serve` over a workspace: every endpoint through a real uvicorn server and httpx."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from cryotune.reference import LATER_FROZEN_MIOU, PAPER_FROZEN_MIOU


@pytest.fixture(scope="module")
def api(serve, api_sweep) -> httpx.Client:
    with httpx.Client(
        base_url=serve("--workspace", str(api_sweep.parent)).url, timeout=30
    ) as client:
        yield client


PAIRS = ["glid/unet", "glid/ssl4eo_mae", "caffe/unet", "caffe/ssl4eo_mae"]


@pytest.fixture(scope="module")
def records(api_sweep) -> dict[str, dict]:
    """Each pair's record, by pair key."""
    files = (api_sweep / "records").glob("*.json")
    return {f"{(r := json.loads(f.read_text()))['dataset']}/{r['model']}": r for f in files}


def test_health_answers(api):
    health = api.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["source"] == "workspace"


def test_sweeps_lists_the_finished_sweep_with_counts_and_times(api, api_sweep):
    (sweep,) = api.get("/sweeps").json()
    assert (sweep["name"], sweep["state"]) == (api_sweep.name, "finished")
    assert sweep["datasets"] == ["glid", "caffe"] and sweep["models"] == ["unet", "ssl4eo_mae"]
    trials = sweep["trials"]
    assert (trials["budget"], trials["done"], trials["running"]) == (16, 16, 0)
    assert trials["complete"] + trials["pruned"] + trials["failed"] == 16
    assert sweep["started_at"] <= sweep["updated_at"]
    assert api.get("/sweeps", params={"state": "running"}).json() == []


def test_one_sweep_shows_each_pairs_counts_best_and_config(api, api_sweep, records):
    detail = api.get(f"/sweeps/{api_sweep.name}").json()
    pairs = {p["key"]: p for p in detail["pairs"]}
    assert list(pairs) == PAIRS
    for key, pair in pairs.items():
        record = records[key]
        assert pair["state"] == "finished" and pair["done"] == 4
        assert pair["best_val_miou"] == pytest.approx(record["best"]["val_miou"])
        assert pair["best_config"]["lr"] == pytest.approx(record["config"]["lr"])
        assert pair["best_config"]["study_trial"] == record["ids"]["study_trial"]


def test_the_leaderboard_ranks_models_beside_the_papers_frozen_miou(api, api_sweep, records):
    board = api.get("/best/glid").json()
    entries = board["entries"]
    assert {e["model"] for e in entries} == {"unet", "ssl4eo_mae"}
    assert entries[0]["val_miou"] >= entries[1]["val_miou"]
    for entry in entries:
        record = records[f"glid/{entry['model']}"]
        assert entry["sweep"] == api_sweep.name
        assert entry["val_miou"] == pytest.approx(record["best"]["val_miou"])
        assert entry["test_miou"] == pytest.approx(record["best"]["test_metrics"]["miou"])
        assert entry["config"] == record["config"]
        assert entry["paper_frozen_miou"] == PAPER_FROZEN_MIOU[entry["model"]]["glid"]
        assert entry["later_frozen_miou"] == LATER_FROZEN_MIOU[entry["model"]]["glid"]
        assert "mlflow_run_id" in entry
    assert "Cryo-Bench" in board["paper_reference"] and "whole-scene" in board["later_reference"]
    assert board["protocol"] == "docs/protocol.md"
    schema = api.get("/openapi.json").json()["components"]["schemas"]["LeaderboardEntry"]
    assert "docs/protocol.md" in schema["properties"]["paper_frozen_miou"]["description"]


def test_best_returns_the_record_with_its_repeat_command(api, records):
    best = api.get("/best/glid/ssl4eo_mae").json()
    record = records["glid/ssl4eo_mae"]
    assert best["repeat_command"] == record["repeat_command"]
    assert best["repeat_command"].startswith("cryotune train glid ssl4eo_mae --lr ")
    assert best["search_space"] == record["search_space"] and best["seeds"] == record["seeds"]
    assert best["paper_frozen_miou"] == 75.71


@pytest.mark.parametrize(
    ("path", "kind", "existing"),
    [
        ("/sweeps/nope", "sweep", ["smoke-glid-caffe"]),
        ("/best/sicd", "dataset", ["caffe", "glid"]),
        ("/report/nope", "sweep", ["smoke-glid-caffe"]),
        ("/best/glid/dofa", "model", ["ssl4eo_mae", "unet"]),
        ("/best/gld/unet", "dataset", ["caffe", "glid"]),
    ],
)
def test_unknown_names_answer_404_listing_what_exists(api, path, kind, existing):
    answer = api.get(path)
    assert answer.status_code == 404
    body = answer.json()
    assert (body["kind"], body["existing"]) == (kind, existing)
    assert all(name in body["detail"] for name in existing)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/sweeps", {"state": "paused"}),
        ("/sweeps", {"stat": "running"}),
        ("/sweeps", {"limit": "0"}),
        ("/sweeps", {"limit": "1001"}),
        ("/sweeps", {"page_token": "%%"}),
        ("/best/glid", {"limit": "3"}),
        ("/report/api-glid", {"format": "pdf"}),
        ("/report/api-glid", {"fmt": "md"}),
        ("/sweeps/has space", None),
        ("/best/gl id", None),
        ("/best/glid/.unet", None),
        (f"/sweeps/{'x' * 200}", None),
    ],
)
def test_malformed_input_answers_422(api, path, params):
    answer = api.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][0] in ("query", "path")


def test_the_report_answers_as_json_or_as_the_papers_table_in_markdown(api, api_sweep, records):
    report = api.get(f"/report/{api_sweep.name}").json()
    assert report["sweeps"] == [api_sweep.name]
    assert [r["model"] for r in report["rows"]] == ["ssl4eo_mae", "unet"]  # the paper's order
    glid = [c["dataset"] for c in report["columns"]].index("glid")
    for row in report["rows"]:
        cell = row["cells"][glid]
        record = records[f"glid/{row['model']}"]
        assert cell["state"] == "complete"
        assert cell["test_miou"] == pytest.approx(record["best"]["test_metrics"]["miou"])
        assert cell["reference"] == PAPER_FROZEN_MIOU[row["model"]]["glid"]
        assert cell["difference"] == pytest.approx(cell["test_miou"] - cell["reference"])
    markdown = api.get(f"/report/{api_sweep.name}", params={"format": "md"})
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "| model | GLID | CaFFe | avg |" in markdown.text and "| U-Net |" in markdown.text
    assert api.get(f"/report/{api_sweep.name}", params={"format": "csv"}).text.startswith(
        "model,dataset,state"
    )


def test_the_sweep_list_pages_with_a_next_link(serve, planned_sweeps, tmp_path):
    root = planned_sweeps(tmp_path / "runs", "sweep-c", "sweep-a", "sweep-b")
    with httpx.Client(base_url=serve("--workspace", str(root)).url, timeout=30) as api:
        whole = api.get("/sweeps")
        assert [s["name"] for s in whole.json()] == ["sweep-a", "sweep-b", "sweep-c"]
        assert "x-next-page-token" not in whole.headers and "link" not in whole.headers
        first = api.get("/sweeps", params={"limit": 2})
        assert [s["name"] for s in first.json()] == ["sweep-a", "sweep-b"]
        following = first.links["next"]["url"]
        asked = httpx.URL(following).params
        assert asked["page_token"] == first.headers["x-next-page-token"] and asked["limit"] == "2"
        last = api.get(following)
        assert [s["name"] for s in last.json()] == ["sweep-c"] and "link" not in last.headers
        token = first.headers["x-next-page-token"]
        again = api.get("/sweeps", params={"page_token": token, "state": "interrupted"})
        assert [s["name"] for s in again.json()] == ["sweep-c"]


def test_the_api_is_read_only(api):
    assert api.post("/sweeps").status_code == 405
    assert api.delete("/best/glid/unet").status_code == 405


def test_the_schema_and_docs_are_served(api):
    schema = api.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/health",
        "/sweeps",
        "/sweeps/{name}",
        "/best/{dataset}",
        "/best/{dataset}/{model}",
        "/report/{sweep}",
    }
    assert all(set(ops) == {"get"} for ops in schema["paths"].values())
    assert "swagger" in api.get("/docs").text.lower()


def test_with_a_token_every_endpoint_but_health_needs_it(serve, api_sweep):
    url = serve("--workspace", str(api_sweep.parent), token="s3cret-token").url
    assert httpx.get(f"{url}/health").status_code == 200
    paths = ["/sweeps", f"/sweeps/{api_sweep.name}", "/best/glid", "/best/glid/unet"]
    for path in (*paths, f"/report/{api_sweep.name}"):
        missing = httpx.get(f"{url}{path}")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(f"{url}{path}", headers={"Authorization": "Bearer s3cret-tokem"})
        assert wrong.status_code == 401 and "invalid_token" in wrong.headers["www-authenticate"]
        basic = httpx.get(f"{url}{path}", auth=("user", "s3cret-token"))
        assert basic.status_code == 401
        right = httpx.get(f"{url}{path}", headers={"Authorization": "Bearer s3cret-token"})
        assert right.status_code == 200, right.text


def test_the_api_answers_while_a_sweep_runs_and_sees_its_progress(
    serve, cryotune_background, sweep_command, tmp_path
):
    workspace = tmp_path / "runs"
    url = serve("--workspace", str(workspace)).url
    args = [*sweep_command(workspace, "live", "unet", 8), "--max-concurrent", "1"]
    sweep = cryotune_background(*args, log=tmp_path / "sweep.log")
    seen: list[tuple[str, int]] = []
    pair_running = False
    deadline = time.monotonic() + 240
    with httpx.Client(base_url=url, timeout=30) as api:
        while time.monotonic() < deadline and len({done for _, done in seen}) < 3:
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            sweeps = api.get("/sweeps")
            assert sweeps.status_code == 200, sweeps.text
            if sweeps.json():
                (live,) = sweeps.json()
                seen.append((live["state"], live["trials"]["done"]))
                (pair,) = api.get("/sweeps/live").json()["pairs"]
                pair_running |= pair["state"] == "running" and pair["running"] == 1
            time.sleep(0.5)
        assert len({done for _, done in seen}) >= 3, seen  # the counts grew while it ran
        assert {state for state, _ in seen} == {"running"} and pair_running
        done = [d for _, d in seen]
        assert done == sorted(done)

        sweep.kill()  # the driver dies without finishing: the sweep reads as interrupted
        sweep.wait()
        deadline = time.monotonic() + 15  # once the server's snapshot (2 s old at most) renews
        while api.get("/sweeps/live").json()["state"] != "interrupted":
            assert time.monotonic() < deadline, api.get("/sweeps/live").json()["state"]
            time.sleep(0.25)


def test_answers_are_at_most_max_age_old_and_0_reads_every_request(serve, planned_sweeps, tmp_path):
    root = planned_sweeps(tmp_path / "runs", "sweep-a")
    kept = httpx.Client(base_url=serve("--workspace", str(root), "--max-age", "1").url)
    fresh = httpx.Client(base_url=serve("--workspace", str(root), "--max-age", "0").url)
    with kept, fresh:
        assert [s["name"] for s in kept.get("/sweeps").json()] == ["sweep-a"]
        planned_sweeps(root, "sweep-b")
        added = time.monotonic()
        assert [s["name"] for s in fresh.get("/sweeps").json()] == ["sweep-a", "sweep-b"]
        assert len(kept.get("/sweeps").json()) == 1  # what it read, while it reads again
        while len(kept.get("/sweeps").json()) < 2:
            assert time.monotonic() - added < 10
            time.sleep(0.1)


def test_binding_beyond_loopback_without_a_token_warns(serve, api_sweep):
    server = serve("--workspace", str(api_sweep.parent), "--host", "0.0.0.0")
    assert "warning: serving 0.0.0.0 without a token" in server.log.read_text()
    quiet = serve("--workspace", str(api_sweep.parent), "--host", "0.0.0.0", token="t")
    assert "warning" not in quiet.log.read_text()


def test_served_from_the_mlflow_store_alone_the_answers_match_the_workspace(
    api, serve, api_sweep, cryotune
):
    store = f"sqlite:///{api_sweep.parent / 'mlflow.db'}"
    with httpx.Client(base_url=serve("--tracking-uri", store).url, timeout=30) as mlflow_api:
        assert mlflow_api.get("/health").json()["source"] == "mlflow"
        from_store = mlflow_api.get(f"/sweeps/{api_sweep.name}").json()
        from_workspace = api.get(f"/sweeps/{api_sweep.name}").json()
        assert from_store["state"] == from_workspace["state"] == "finished"
        assert from_store["trials"] == from_workspace["trials"]
        same = ("key", "state", "budget", "complete", "pruned", "failed", "running", "done")
        for ours, theirs in zip(from_store["pairs"], from_workspace["pairs"], strict=True):
            assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
            assert ours["best_val_miou"] == pytest.approx(theirs["best_val_miou"])
            assert ours["best_config"] == theirs["best_config"]
        board = mlflow_api.get("/best/glid").json()
        assert board == api.get("/best/glid").json()
        assert all(entry["mlflow_run_id"] for entry in board["entries"])
        assert mlflow_api.get("/best/gld").status_code == 404
        # The CLI over each source gives the records both servers give, model by model.
        for source in (("--workspace", str(api_sweep.parent)), ("--tracking-uri", store)):
            done = cryotune("best", "glid", "--json", *source)
            assert done.returncode == 0, done.stderr
            from_cli = json.loads(done.stdout)
            assert [r["model"] for r in from_cli] == [e["model"] for e in board["entries"]]
            for record in from_cli:
                path = f"/best/glid/{record['model']}"
                assert record == api.get(path).json() == mlflow_api.get(path).json()


def test_an_unreachable_tracking_server_answers_503_not_500(serve):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
    url = serve("--tracking-uri", nobody).url
    assert httpx.get(f"{url}/health").status_code == 200
    answer = httpx.get(f"{url}/sweeps", timeout=60)
    assert answer.status_code == 503 and nobody in answer.json()["detail"]

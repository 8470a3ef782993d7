"""Scale: 1, 10 and 100 (dataset, model) pairs x 20 trials through the real sweep driver, trials
simulated (``bench/simulated.py``: a learning curve, ``--epoch-s`` of sleep per epoch), against a
plain Ray Tune ``Tuner`` running the same simulated trials, on 2 slots and on as many simulated
slots as the machine allows.

Everything but the training is cryotune's own: the driver, one Optuna study and one ASHA per
pair, the study storage (sqlite in the workspace; PostgreSQL too when one is at hand), the
MLflow outboxes delivering to an MLflow tracking server, records, ``status`` and the API. The
plain ``Tuner`` has no searcher (random variants), Tune's own ASHA with the same settings and
reused actors, and no storage, records or tracking: the floor Tune itself sets.

Per run, measured in the driver's own process (``bench/scale_run.py``, imports done first):

- driver CPU seconds per trial and per reported epoch; the driver's peak memory;
- wall overhead against the ideal schedule (every trial's epochs x ``--epoch-s``, packed onto the
  slots with no gap): over the whole run (Ray start and MLflow's end included) and from the
  first trial's start to the last one's end. Ray Tune's published scalability run, the anchor:
  10,000 one-second trials on 16 CPUs took 715 s against a 625 s minimum (14 %);
- MLflow delivery lag: from the last trial's end until every outbox is delivered and the store
  holds every trial's run ended.

Then: how the per-trial CPU grows from the fewest to the most pairs (target: at most 1.5x);
time per Optuna ask, reported epoch and tell on sqlite and PostgreSQL (``bench/asktell.py``);
p50/p99 of ``status``, ``/sweeps``, ``/sweeps/{name}`` and ``/best/{dataset}`` over the workspace
and over MLflow alone, while the largest sweep runs and once it is finished (target: p99 under
200 ms; ``bench/latency.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.output import write_result
from bench.table import Row
from bench.workload import derive_spec, quiet_environment, write_data

NAME = "scale"
PAIRS = (1, 10, 100)
TRIALS_PER_PAIR = 20
GROWTH_TARGET = 1.5
LATENCY_TARGET_MS = 200.0
RAY_ANCHOR = "Ray Tune: 10,000 one-second trials on 16 CPUs in 715 s vs 625 s ideal (14 %)"
REPO = Path(__file__).resolve().parents[1]
WORKER_MB = 400  # a Ray worker running simulated trials, with headroom


def pair_grid(pairs: int) -> tuple[list[str], list[str]]:
    """Datasets and models whose every combination is a pair: as close to ``pairs`` as the
    registry's datasets x models allow (at least ``pairs`` on a tie)."""
    from cryotune.data.datasets import DATASETS
    from cryotune.models.encoders import ENCODERS

    datasets, models = list(DATASETS), list(ENCODERS)
    best = min(
        ((d, m) for d in range(1, len(datasets) + 1) for m in range(1, len(models) + 1)),
        key=lambda dm: (abs(dm[0] * dm[1] - pairs), dm[0] * dm[1] < pairs, -dm[0]),
    )
    return datasets[: best[0]], models[: best[1]]


def available_mb() -> float:
    """Memory available to new processes (Linux's MemAvailable, else free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20


def most_slots() -> int:
    """Simulated slots this machine can hold: 4 per CPU (trials sleep), and workers in half the
    available memory, at most 32."""
    workers = int(available_mb() / 2 / WORKER_MB)
    return max(2, min(32, 4 * (os.cpu_count() or 1), workers))


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A lean MLflow tracking server (``cryotune mlflow``'s) over a sqlite store in ``folder``."""
    from bench.latency import free_port
    from cryotune.tracking.server import SERVER_ENVIRONMENT, UiServer, healthy

    folder.mkdir(parents=True, exist_ok=True)
    server = UiServer(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", "127.0.0.1", 0)
    server = UiServer(server.backend_uri, server.artifacts_dir, server.host, free_port())
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        server.command(),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **SERVER_ENVIRONMENT},
    )
    try:
        deadline = time.monotonic() + 120
        while not healthy(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield server.url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def postgres(folder: Path) -> Iterator[str | None]:
    """``$CRYOTUNE_TEST_POSTGRES``, else a throwaway server (scripts/postgres.sh), else None."""
    given = os.environ.get("CRYOTUNE_TEST_POSTGRES")
    if given:
        yield given
        return
    script = REPO / "scripts" / "postgres.sh"
    started = subprocess.run(
        ["bash", str(script), "start", str(folder)], capture_output=True, text=True
    )
    if started.returncode != 0:
        print(f"scale: no PostgreSQL ({started.stderr.strip()[-300:]})", flush=True)
        yield None
        return
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True)


def run_one(way: str, name: str, setting: dict, work: Path, **stores: str | None) -> dict:
    """One run in its own process (``bench/scale_run.py``); its measurements."""
    out = work / f"{name}.json"
    command = [sys.executable, "-m", "bench.scale_run", "--way", way, "--name", name]
    for key, value in {**setting, **stores}.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    command += ["--workspace", str(work / "runs"), "--out", str(out)]
    log = work / f"{name}.log"
    with log.open("w") as output:
        done = subprocess.run(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}): {log.read_text()[-3000:]}")
    return json.loads(out.read_text())


def figures(run: dict) -> dict:
    """The run's costs: driver CPU per trial and per epoch, wall against the ideal schedule,
    memory and (cryotune) MLflow's lag."""
    trials = run["trials"]
    epochs = sum(t["epochs"] for t in trials)
    ideal = max(epochs * run["epoch_s"] / run["slots"], 1e-9)
    first = min(t["started"] for t in trials)
    last = max(t["ended"] for t in trials)
    out = {
        "trials": len(trials),
        "epochs": epochs,
        "wall_s": round(run["wall_s"], 2),
        "ideal_s": round(ideal, 2),
        "overhead": round(run["wall_s"] / ideal - 1, 3),
        "steady_overhead": round((last - first) / ideal - 1, 3),
        "driver_cpu_s": round(run["driver_cpu_s"], 2),
        "cpu_ms_per_trial": round(1000 * run["driver_cpu_s"] / len(trials), 1),
        "cpu_ms_per_epoch": round(1000 * run["driver_cpu_s"] / max(epochs, 1), 1),
        "steady_cpu_ms_per_trial": round(1000 * run["steady_driver_cpu_s"] / len(trials), 1),
        "steady_cpu_ms_per_epoch": round(1000 * run["steady_driver_cpu_s"] / max(epochs, 1), 1),
        "rss_before_mb": round(run["rss_before_mb"]),
        "peak_rss_mb": round(run["peak_rss_mb"]),
    }
    if run["way"] == "cryotune":
        delivered = run.get("delivered_at")
        out["mlflow_lag_s"] = None if delivered is None else round(delivered - last, 2)
        out["unfinished"] = run["unfinished"]
    return out


def growth(runs: list[dict]) -> dict:
    """Per (way, slots): CPU per trial and per epoch at the most pairs over those at the fewest,
    steady (first trial start to last trial end, the verdict) and over the whole run (whose
    fixed start-up cost a run of few trials spreads thin)."""
    out = {}
    for way in ("cryotune", "ray_tune"):
        for slots in sorted({r["slots"] for r in runs}):
            mine = sorted(
                (r for r in runs if r["way"] == way and r["slots"] == slots and not r["store"]),
                key=lambda r: r["pairs"],
            )
            if len(mine) >= 2:
                low, high = mine[0], mine[-1]
                out[f"{way} {slots} slots"] = {
                    "pairs": [low["pairs"], high["pairs"]],
                    **{
                        f"{figure}_ratio": round(high[figure] / max(low[figure], 1e-9), 2)
                        for figure in (
                            "steady_cpu_ms_per_trial",
                            "steady_cpu_ms_per_epoch",
                            "cpu_ms_per_trial",
                            "cpu_ms_per_epoch",
                        )
                    },
                }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__)
    parser.add_argument("--pairs", default=",".join(map(str, PAIRS)), help="pair counts")
    parser.add_argument("--trials", type=int, default=TRIALS_PER_PAIR, help="per pair")
    parser.add_argument("--slots", default=None, help="slot counts (default: 2 and the most)")
    parser.add_argument("--epoch-s", type=float, default=0.1, help="seconds per epoch")
    parser.add_argument("--epochs", type=int, default=8, help="epoch cap (ASHA: 1, 2, 4, 8)")
    parser.add_argument("--probe-rounds", type=int, default=30, help="reads of a finished sweep")
    parser.add_argument(
        "--quick", action="store_true", help="1 and 3 pairs x 3 trials on 2 slots, no PG sweep"
    )
    parser.add_argument(
        "--postgresql",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the largest sweep on PostgreSQL studies (where a server can be started)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.trials, args.probe_rounds, args.slots = "1,3", 3, 3, "2"
    pair_counts = sorted({int(p) for p in args.pairs.split(",")})
    slot_counts = (
        sorted({int(s) for s in args.slots.split(",")}) if args.slots else sorted({2, most_slots()})
    )
    quiet_environment()
    from cryotune.tracking.uri import CLIENT_ENVIRONMENT

    os.environ.update(CLIENT_ENVIRONMENT)
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-scale-") as tmp:
        work = Path(tmp)
        result = measure(args, work, pair_counts, slot_counts)
    path = write_result(NAME, result, args.out)
    print(json.dumps(result["summary"], indent=2))
    print(f"met: {result['met']}; wrote {path}")
    return result


def measure(args, work: Path, pair_counts: list[int], slot_counts: list[int]) -> dict:

    from bench.asktell import time_ask_tell
    from bench.latency import Prober, reads

    grids = {n: pair_grid(n) for n in pair_counts}
    datasets = sorted({d for ds, _ in grids.values() for d in ds})
    data_root = write_data(work / "data", tuple(datasets), tiles=2, size=32)
    spec = derive_spec(
        "default",
        work / "scale.yaml",
        **{
            "budget.trials": args.trials,
            "scheduler.max_epochs": args.epochs,
            "scheduler.grace_period": 1,
            "scheduler.reduction_factor": 2,
            "sampler.startup_trials": max(2, args.trials // 2),
            "trial": {"weights": "random", "val_every": 1},
        },
    )
    import yaml

    (work / "scale.json").write_text(json.dumps(yaml.safe_load(spec.read_text())))
    runs: list[dict] = []
    latency: dict = {}
    largest = (max(pair_counts), max(slot_counts))
    # The server runs as another user when this runs as root: its folder sits under /tmp.
    pg_folder = Path(tempfile.mkdtemp(prefix="cryotune-bench-pg-"))
    pg_folder.rmdir()
    with mlflow_server(work / "mlflow") as tracking_uri, postgres(pg_folder) as pg:
        optuna_pg = f"{pg}/optuna" if pg else None
        workspace = work / "runs"
        sources = {
            "workspace": {"workspace": str(workspace)},
            "mlflow": {"tracking_uri": tracking_uri},
        }
        plan = [(n, s, None) for s in slot_counts for n in pair_counts]
        if optuna_pg and args.postgresql and not args.quick:
            plan.append((*largest, "postgresql"))
        for pairs, slots, store in plan:
            ds, models = grids[pairs]
            setting = {
                "datasets": ",".join(ds),
                "models": ",".join(models),
                "slots": slots,
                "epoch_s": args.epoch_s,
                "spec": spec,
                "spec_json": work / "scale.json",
                "data_root": data_root,
            }
            tag = f"p{len(ds) * len(models)}-s{slots}" + ("-pg" if store else "")
            print(
                f"scale: {tag} cryotune ({len(ds) * len(models) * args.trials} trials)", flush=True
            )
            name = f"scale-{tag}"
            probing = (pairs, slots) == largest and store is None
            with contextlib.ExitStack() as stack:
                prober = None
                if probing:
                    # The servers start before the sweep: the workspace one finds no sweep yet.
                    workspace.mkdir(parents=True, exist_ok=True)
                    clients = _api_clients(stack, sources, work, "")
                    prober = Prober(reads(clients, sources, name, ds[0]))
                    stack.enter_context(_when_sweep_exists(prober, workspace / name))
                run = run_one(
                    "cryotune",
                    name,
                    {**setting, "trials": len(ds) * len(models) * args.trials},
                    work,
                    tracking_uri=tracking_uri,
                    optuna_storage=optuna_pg if store else None,
                )
            if prober is not None:
                latency["running"] = prober.summary()
            runs.append(_row("cryotune", pairs, len(ds) * len(models), slots, store, run))
            if store is None:
                print(f"scale: {tag} ray_tune", flush=True)
                plain = run_one(
                    "ray_tune",
                    f"tune-{tag}",
                    {**setting, "trials": len(ds) * len(models) * args.trials},
                    work,
                )
                runs.append(_row("ray_tune", pairs, len(ds) * len(models), slots, None, plain))
            print(f"scale: {json.dumps(runs[-2:] if store is None else runs[-1:])}", flush=True)
        name = f"scale-p{len(grids[largest[0]][0]) * len(grids[largest[0]][1])}-s{largest[1]}"
        with contextlib.ExitStack() as stack:
            clients = _api_clients(stack, sources, work, "-after")
            prober = Prober(reads(clients, sources, name, grids[largest[0]][0][0]))
            prober.round()  # first reads fill the servers' caches; timed apart
            latency["first"] = prober.summary()
            latency["finished"] = Prober(prober.reads).rounds(args.probe_rounds).summary()
        asktell = {"sqlite": time_ask_tell(f"sqlite:///{work / 'asktell.db'}", "bench", 10, 20)}
        if optuna_pg:
            asktell["postgresql"] = time_ask_tell(optuna_pg, "bench-asktell", 10, 20)
    return summarise(args, runs, latency, asktell, slot_counts)


def _api_clients(stack: contextlib.ExitStack, sources: dict, work: Path, suffix: str) -> dict:
    """A real ``cryotune serve`` per source, and an HTTP client of each, closed with ``stack``."""
    import httpx

    from bench.latency import api_server

    return {
        key: stack.enter_context(
            httpx.Client(
                base_url=stack.enter_context(
                    api_server(_flags(source), work / f"serve-{key}{suffix}.log")
                ),
                timeout=60,
            )
        )
        for key, source in sources.items()
    }


def _flags(source: dict) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in source.items()]


@contextlib.contextmanager
def _when_sweep_exists(prober, sweep_dir: Path) -> Iterator[None]:
    """Probe while the block runs, from when the sweep's plan is written."""
    import threading

    stop = threading.Event()

    def wait_then_probe() -> None:
        while not stop.is_set() and not (sweep_dir / "sweep.json").exists():
            stop.wait(0.5)
        if stop.is_set():
            return
        stop.wait(5)  # the tracker's runs exist a moment after the plan
        while not stop.is_set():
            prober.round()
            stop.wait(1.0)

    thread = threading.Thread(target=wait_then_probe, name="bench-probe", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _row(way: str, pairs: int, actual: int, slots: int, store: str | None, run: dict) -> dict:
    keys = {"way": way, "pairs": actual, "asked_pairs": pairs, "slots": slots, "store": store}
    return {**keys, **figures(run)}


def _worst(reads: dict) -> float | None:
    """The slowest read's p99; None when a read has none (it failed or was never sampled)."""
    values = [v.get("p99_ms") for v in reads.values()]
    return None if not values or None in values else max(values)


def summarise(args, runs: list[dict], latency: dict, asktell: dict, slot_counts) -> dict:
    grown = growth(runs)
    worst_p99 = {phase: _worst(latency.get(phase, {})) for phase in ("running", "finished")}
    met = {
        "growth": all(
            g["steady_cpu_ms_per_trial_ratio"] <= GROWTH_TARGET
            for key, g in grown.items()
            if key.startswith("cryotune")
        ),
        "latency": all(v is not None and v < LATENCY_TARGET_MS for v in worst_p99.values()),
    }
    return {
        "benchmark": NAME,
        "trials_per_pair": args.trials,
        "epoch_s": args.epoch_s,
        "epoch_cap": args.epochs,
        "slots": slot_counts,
        "anchor": RAY_ANCHOR,
        "target": f"cryotune steady CPU per trial at the most pairs <= {GROWTH_TARGET}x the fewest; "
        f"every read's p99 < {LATENCY_TARGET_MS:g} ms, finished and while running",
        "met": met,
        "summary": {
            "runs": runs,
            "growth": grown,
            "latency": latency,
            "worst_p99_ms": worst_p99,
            "ask_tell": asktell,
        },
        "quick": args.quick,
    }


def _costs(run: dict) -> str:
    return (
        f"{run['steady_cpu_ms_per_trial']} ms CPU/trial, {run['steady_cpu_ms_per_epoch']} "
        f"ms/epoch, wall +{run['steady_overhead']:.0%} over ideal (whole run "
        f"+{run['overhead']:.0%})"
    )


def row(result: dict) -> Row:
    s = result["summary"]
    runs = s["runs"]
    most = max(r["pairs"] for r in runs)

    def at(way: str, slots: int, pairs: int) -> dict | None:
        return next(
            (
                r
                for r in runs
                if (r["way"], r["slots"], r["pairs"], r["store"]) == (way, slots, pairs, None)
            ),
            None,
        )

    parts = []
    for slots in result["slots"]:
        ours, theirs = at("cryotune", slots, most), at("ray_tune", slots, most)
        if ours and theirs:
            parts.append(
                f"{most} pairs on {slots} slots: cryotune {_costs(ours)}, peak "
                f"{ours['peak_rss_mb']} MB, MLflow lag {ours['mlflow_lag_s']} s; plain Tune "
                f"{_costs(theirs)}, peak {theirs['peak_rss_mb']} MB"
            )
    postgres = next((r for r in runs if r["store"]), None)
    if postgres:
        parts.append(f"on PostgreSQL studies: cryotune {_costs(postgres)}")
    growth_text = ", ".join(
        f"{k} x{v['steady_cpu_ms_per_trial_ratio']}" for k, v in s["growth"].items()
    )
    worst = s["worst_p99_ms"]
    latency = s["latency"].get("finished", {})
    slowest = max(latency.items(), key=lambda kv: kv[1].get("p99_ms", 0), default=None)
    asktell = "; ".join(
        f"{store} {v['ask']['p50_ms']} / {v['report']['p50_ms']} / {v['tell']['p50_ms']} ms"
        for store, v in s["ask_tell"].items()
    )
    figures_text = (
        "; ".join(parts)
        + f". Steady CPU/trial, most pairs over fewest: {growth_text}. Optuna ask / epoch / "
        f"tell p50: {asktell}. Reads, worst p99: {worst.get('finished')} ms finished"
        + (f" ({slowest[0]})" if slowest else "")
        + f", {worst.get('running')} ms while running"
    )
    return Row(
        compared=f"{', '.join(str(p) for p in sorted({r['pairs'] for r in runs}))} pairs x "
        f"{result['trials_per_pair']} simulated trials ({result['epoch_s']} s/epoch, cap "
        f"{result['epoch_cap']}) on {' and '.join(map(str, result['slots']))} slots: cryotune "
        f"vs a plain Ray Tune Tuner (no searcher); anchor {result['anchor']}",
        figures=figures_text,
        target=result["target"],
        met=result["met"]["growth"] and result["met"]["latency"],
        spread="one run; steady CPU ms/trial by pairs/slots: "
        + "; ".join(
            f"{r['way']} {r['pairs']}p/{r['slots']}s{'/' + r['store'] if r['store'] else ''} "
            f"{r['steady_cpu_ms_per_trial']}"
            for r in runs
        ),
    )


if __name__ == "__main__":
    main()

"""The `cryotune` command: parses flags and calls one library function per subcommand."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from cryotune.cli_flags import (
    add_data_root,
    add_deprecated,
    add_tracking_uri,
    add_train_flags,
    add_weights,
    add_workspace,
)
from cryotune.errors import CryotuneError, UsageError
from cryotune.query.snapshot import DEFAULT_MAX_AGE_S
from cryotune.report.render import FORMATS
from cryotune.table import format_table


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see {self.prog} --help)")


DEFAULT_PLOT = "cryotune-report.png"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_datasets(args: argparse.Namespace) -> int:
    from cryotune.data.datasets import DATASETS
    from cryotune.data.roots import DataRoots, find_root

    given = DataRoots.parse(args.data_root, list(DATASETS), "a Cryo-Bench dataset")
    rows = []
    for spec in DATASETS.values():
        root = find_root(spec.key, given.folder(spec.key))
        rows.append(
            {
                "key": spec.key,
                "task": spec.task,
                "sensors": list(spec.sensors),
                "bands": {m.name: list(m.bands) for m in spec.modalities},
                "paper_views": dict(spec.paper_views),
                "paper_views_source": spec.paper_views_source or None,
                "classes": list(spec.classes),
                "tile_size": spec.tile_size,
                "root": str(root) if root else None,
                "found": root is not None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        format_table(
            ["key", "task", "bands", "classes", "data"],
            [
                (
                    r["key"],
                    r["task"],
                    "; ".join(f"{m}: {','.join(b)}" for m, b in r["bands"].items()),
                    len(r["classes"]),
                    r["root"] or "not found",
                )
                for r in rows
            ],
        )
    )
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from cryotune.data.synth import write_synthetic

    out = write_synthetic(
        args.key, Path(args.out), tiles=args.tiles, size=args.size, seed=args.seed
    )
    print(f"wrote synthetic {args.key} to {out}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from cryotune.data.check import check_dataset
    from cryotune.data.roots import DataRoots, resolve_root

    given = DataRoots.parse(args.data_root, [args.key], "the dataset checked")
    root = resolve_root(args.key, given.folder(args.key))
    report = check_dataset(args.key, root)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1


def cmd_models(args: argparse.Namespace) -> int:
    from cryotune.models.catalog import model_rows

    rows = model_rows(args.weights)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        format_table(
            ["key", "family", "params", "input", "blocks", "tapped", "bands", "weights"],
            [
                (
                    r["key"],
                    r["family"],
                    f"{r['params'] / 1e6:.1f}M",
                    r["input_size"] or "tile",
                    r["blocks"],
                    ",".join(map(str, r["tapped_layers"])),
                    "; ".join(f"{m}: {','.join(b)}" for m, b in r["bands"].items()),
                    (
                        "found"
                        if r["weights_found"]
                        else f"missing: cryotune weights fetch {r['key']}"
                    )
                    if r["weights_file"]
                    else "none (trained from scratch)",
                )
                for r in rows
            ],
        )
    )
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from cryotune.weights.status import STATUS_TEXT, folder_states, human_size, resolve_folder

    folder = resolve_folder(args.weights)
    states = folder_states(folder)
    if args.json:
        print(json.dumps({"folder": str(folder), "files": [s.to_dict() for s in states]}, indent=2))
        return 0
    print(f"weights folder: {folder}")
    print(
        format_table(
            ["model", "file", "status", "size", "sha256", "checked against", "source"],
            [
                (
                    s.source.label,
                    s.name,
                    STATUS_TEXT[s.status],
                    human_size(s.size) if s.size is not None else "",
                    s.sha256[:12] if s.sha256 else "",
                    s.expected_from or "",
                    s.source.origin.describe(),
                )
                for s in states
            ],
        )
    )
    return 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from cryotune.weights.fetch import Remotes, plan, plan_lines, run, summary
    from cryotune.weights.needs import chosen_sources
    from cryotune.weights.status import resolve_folder

    sources = chosen_sources(args.models, args.all, args.for_datasets)
    folder = resolve_folder(args.weights)
    remotes = Remotes(timeout=args.timeout)
    steps = plan(sources, folder, remotes)
    print("\n".join(plan_lines(steps, folder)), flush=True)
    if args.dry_run:
        return 1 if any(s.action == "failed" for s in steps) else 0

    def report(outcome) -> None:
        print(f"{outcome.source.label}: {outcome.status}: {outcome.message}", flush=True)

    outcomes = run(steps, folder, remotes, report)
    print(summary(outcomes))
    return 0 if all(o.status in ("present", "fetched") for o in outcomes) else 1


def cmd_train(args: argparse.Namespace) -> int:
    from cryotune.cli_flags import train_config
    from cryotune.train.repeats import train_repeats

    config = train_config(args)
    result = train_repeats(config, seeds=args.seeds, out=Path(args.out) if args.out else None)
    print(result.format_table())
    return 0


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def cmd_sweep(args: argparse.Namespace) -> int:
    from cryotune.client import SETTINGS, run_sweep
    from cryotune.documents.record import PairRecord
    from cryotune.sweep.records import RECORD_HEADERS, record_rows

    # The sweep's settings are its flags by name: a new setting is a field and a flag.
    settings = {name: getattr(args, name) for name in SETTINGS}
    if args.json:  # the result alone on stdout; progress and notes on stderr
        with contextlib.redirect_stdout(sys.stderr):
            result = run_sweep(args.datasets, **settings)
            for note in result.notes:
                print(note)
        print(result.model_dump_json(indent=2))
        return 0 if result.ok else 1
    result = run_sweep(args.datasets, **settings)
    for note in result.notes:
        print(note)
    print(f"sweep '{result.name}' in {result.location}: {result.seconds:.0f} s")
    print(format_table(RECORD_HEADERS, record_rows(result.records)))
    complete = [r for r in result.records if isinstance(r, PairRecord) and r.complete]
    if complete:
        print("repeat a best config with:")
        for record in complete:
            lacks = record.repeat_command_lacks
            also = f"  # also set: {', '.join(lacks)}" if lacks else ""
            print(f"  {record.repeat_command}{also}")
    return 0 if result.ok else 1


def cmd_mlflow(args: argparse.Namespace) -> int:
    from cryotune.masking import masked_url
    from cryotune.tracking.server import run_ui, ui_server

    def ready(server) -> None:
        store = masked_url(server.backend_uri)
        print(f"MLflow UI: {server.url} (store {store}); Ctrl-C stops it", flush=True)

    server = ui_server(
        args.workspace, args.tracking_uri, args.port, artifacts_dir=args.artifacts_dir
    )
    return run_ui(server, ready)


def _query(args: argparse.Namespace):
    from cryotune.query.service import open_query

    return open_query(args.workspace, args.tracking_uri)


def cmd_status(args: argparse.Namespace) -> int:
    from cryotune.client import status
    from cryotune.sweep.status import STATUS_HEADERS, status_rows

    source = {"workspace": args.workspace, "tracking_uri": args.tracking_uri}
    details = [status(args.name, **source)] if args.name else status(**source)
    if not details:
        where = _query(args).source.where
        raise UsageError(f"no sweeps in {where} (see --workspace, --tracking-uri)")
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in details], indent=2))
        return 0
    for detail in details:
        hint = " (continue with --resume)" if detail.state == "interrupted" else ""
        print(f"{detail.name}: {detail.state}{hint} ({detail.location})")
        print(format_table(STATUS_HEADERS, status_rows([p.model_dump() for p in detail.pairs])))
        for pair in detail.pairs:
            if pair.record_error:
                print(f"  {pair.record_error}")
    return 0


def _best_model(args: argparse.Namespace) -> str | None:
    """The model of `best DATASET [MODEL]`, given as a word or as --model (not both ways)."""
    if args.model and args.model_word and args.model != args.model_word:
        raise UsageError(f"two models given: {args.model_word} and --model {args.model}")
    return args.model or args.model_word


def cmd_best(args: argparse.Namespace) -> int:
    from cryotune.client import best, unreadable_records
    from cryotune.sweep.records import RECORD_HEADERS, record_rows

    source = {"workspace": args.workspace, "tracking_uri": args.tracking_uri}
    model = _best_model(args)
    if args.export is not None:
        return _export(_query(args), args, model)
    if model is None:
        records = best(args.dataset, **source)
    else:
        records = [best(args.dataset, model, **source)]
    if args.json:
        found = [r.model_dump(mode="json") for r in records]
        print(json.dumps(found if model is None else found[0], indent=2))
        return 0
    print(format_table(RECORD_HEADERS, record_rows(records)))
    print(f"best: {records[0].repeat_command}")
    for problem in unreadable_records(args.dataset, **source) if model is None else []:
        print(f"cryotune: warning: {problem}", file=sys.stderr)
    return 0


def _export(query, args: argparse.Namespace, model: str | None) -> int:
    from cryotune.export.cryobench import cryobench_run
    from cryotune.export.terratorch import terratorch_config

    if model is None:
        models = [r.model for r in query.best_records(args.dataset)]
        raise UsageError(
            f"--as {args.export} exports one best config: cryotune best {args.dataset} MODEL "
            f"--as {args.export}; models with results on {args.dataset}: {', '.join(models)}"
        )
    record = query.best(args.dataset, model)
    exported = cryobench_run(record) if args.export == "cryobench" else terratorch_config(record)
    print(exported.model_dump_json(indent=2) if args.json else exported.text().rstrip("\n"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import get_encoder_spec
    from cryotune.report.render import render

    for key in args.datasets or []:
        get_dataset(key)
    for key in args.models or []:
        get_encoder_spec(key)
    for folder in args.repeats or []:
        if not Path(folder).is_dir():
            raise UsageError(f"--repeats {folder}: no such folder")
    query = _query(args)
    report = query.report(
        args.name,
        datasets=args.datasets,
        models=args.models,
        repeat_dirs=[Path(d) for d in args.repeats or []],
        reference=args.reference,
    )
    if not report.rows:
        raise UsageError(f"nothing to report: no sweeps in {query.source.where}")
    text = render(report, args.format)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    if args.plot:
        from cryotune.report.heatmap import heatmap_png

        print(f"heatmap: {heatmap_png(report, Path(args.plot))}", file=sys.stderr)
    for warning in report.warnings:
        print(f"cryotune: warning: {warning}", file=sys.stderr)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from cryotune.masking import masked_url
    from cryotune.sweep.dashboard import dashboard_app, serve, study_storage

    storage = study_storage(args.workspace, args.name, args.optuna_storage)
    app = dashboard_app(storage.url)
    if not _loopback(args.host):
        print(
            f"cryotune: warning: serving {args.host}: the dashboard has no login; anyone who "
            "reaches this port reads the studies",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        print(
            f"Optuna dashboard: {url} ({storage.what} in {masked_url(storage.url)}; read-only); "
            "Ctrl-C stops it",
            flush=True,
        )

    return serve(app, args.host, args.port, ready)


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 0..65535, got {value}")
    return number


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Longer than clients keep an idle connection (httpx: 5 s, uvicorn's own default): with equal
# timeouts a client polling every ~5 s reused a connection the server was closing, and the read
# failed ("Server disconnected without sending a response", once in 199 reads at 102 pairs).
KEEP_ALIVE_S = 65


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from cryotune.api import create_app
    from cryotune.query.service import Query
    from cryotune.query.snapshot import Snapshot

    token = os.environ.get("CRYOTUNE_API_TOKEN") or None
    query = _query(args)
    if args.max_age > 0:
        query = Query(Snapshot(query.source, args.max_age))
    if not _loopback(args.host) and token is None:
        print(
            f"cryotune: warning: serving {args.host} without a token: anyone who reaches this "
            "port reads the sweeps; set CRYOTUNE_API_TOKEN",
            file=sys.stderr,
        )
    print(
        f"serving {query.source.where} on http://{args.host}:{args.port} (docs: /docs)", flush=True
    )
    uvicorn.run(
        create_app(query, token),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return 0


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    add_workspace(source)
    add_tracking_uri(source, "read its sweeps instead of a workspace's")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cryotune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", help="list the Cryo-Bench datasets and whether data was found")
    add_data_root(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)

    data = sub.add_parser("data", help="write synthetic data or check a dataset on disk")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    p = data_sub.add_parser("synth", help="write a small learnable dataset in KEY's real layout")
    p.add_argument("key")
    p.add_argument("--out", required=True, help="folder to write (the dataset root)")
    p.add_argument("--tiles", type=int, default=8, help="tiles per split (default 8)")
    p.add_argument("--size", type=int, default=None, help="tile size in px (default: a small one)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_synth)
    p = data_sub.add_parser("check", help="validate a dataset before spending GPU hours")
    p.add_argument("key")
    add_data_root(p)
    add_deprecated(p, "--root", "--data-root", append=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data_check)

    p = sub.add_parser("models", help="list encoders: sizes, bands, depth range, weights status")
    add_weights(p, "the checkpoint folder to look in; else $CRYOTUNE_WEIGHTS")
    add_deprecated(p, "--weights-dir", "--weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    weights = sub.add_parser("weights", help="list, fetch and verify the encoder checkpoints")
    weights_sub = weights.add_subparsers(
        dest="weights_command", required=True, parser_class=_Parser
    )
    p = weights_sub.add_parser(
        "list", help="every checkpoint: official source, file, size, sha256 and status"
    )
    add_weights(p, "the checkpoint folder (else $CRYOTUNE_WEIGHTS, else ~/.cache/cryotune/weights)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_weights_list)
    p = weights_sub.add_parser(
        "fetch", help="download the missing checkpoints from their official sources, verified"
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="model keys; MODEL:PART one file (ssl4eo_mae:sar)",
    )
    p.add_argument("--all", action="store_true", help="every model's checkpoints")
    p.add_argument(
        "--for-datasets",
        type=_csv,
        metavar="DATASET,...",
        help="the checkpoints a sweep of these datasets needs",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan (with sizes) and stop")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long a source may stay silent (default 60)",
    )
    add_weights(p, "the folder to fill (else $CRYOTUNE_WEIGHTS, else ~/.cache/cryotune/weights)")
    p.set_defaults(func=cmd_weights_fetch)

    p = sub.add_parser("train", help="train one config, optionally over several seeds")
    add_train_flags(p)  # one flag per TrialConfig field
    p.add_argument("--seeds", type=int, default=1, help="repeats with seeds seed, seed+1, ...")
    p.add_argument("--out", help="folder for history and metrics JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="tune lr and finetuning depth per (dataset, model) pair")
    p.add_argument("datasets", nargs="+", metavar="DATASET")
    p.add_argument("--models", type=_csv, help="KEY,... or all (default: every model that fits)")
    p.add_argument(
        "--spec",
        "--config",
        dest="config",
        metavar="FILE",
        help="sweep spec, e.g. sweeps/smoke.yaml (default: paper protocol); --config: its "
        "earlier name",
    )
    p.add_argument("--trials", type=_positive_int, help="trials per pair")
    p.add_argument("--max-epochs", type=_positive_int, help="epochs of a trial never stopped")
    p.add_argument("--label-fraction", type=_fraction, help="few-shot fraction of train tiles")
    p.add_argument("--address", help="join a cluster: auto or ray://HOST:PORT (default: embedded)")
    p.add_argument("--gpus-per-trial", type=_non_negative, help="GPU share per trial")
    p.add_argument("--max-concurrent", type=_positive_int, help="trials at once, all pairs")
    p.add_argument("--num-cpus", type=_positive_int, help="CPUs of the embedded cluster")
    p.add_argument("--name", help="sweep name (default: SPEC-DATASET...)")
    add_workspace(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    p.add_argument("--seed", type=int, help="sampler and training seed")
    add_data_root(p)
    add_weights(p)
    add_tracking_uri(p, "the sweep logs to it; else $MLFLOW_TRACKING_URI, else WORKSPACE/mlflow.db")
    p.add_argument(
        "--tracking-wait",
        type=_non_negative,
        metavar="SECONDS",
        help="at the end, how long to wait for an unreachable tracking server (default 60)",
    )
    p.add_argument(
        "--storage",
        metavar="PATH_OR_URI",
        help="Tune experiment folder every node sees (NFS path or s3://...); else "
        "$CRYOTUNE_STORAGE, else the workspace",
    )
    p.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="study database, e.g. postgresql://USER:PASSWORD@HOST/DB; else "
        "$CRYOTUNE_OPTUNA_STORAGE, else the spec's optuna_storage, else the workspace",
    )
    p.add_argument(
        "--num-workers",
        type=_non_negative_int,
        metavar="N",
        help="data-loading processes per trial (spec trial.num_workers; the trial's CPU "
        "request is raised to at least N)",
    )
    add_deprecated(p, "--data-workers", "--num-workers", type=_non_negative_int, metavar="N")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout (progress and notes go to stderr)",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("mlflow", help="the MLflow UI over a workspace's runs, on 127.0.0.1")
    p.add_argument("--port", type=int, default=5000, help="default 5000")
    add_workspace(p)
    add_tracking_uri(p, "serve it instead of the workspace's (a sqlite or database store)")
    p.add_argument(
        "--artifacts-dir",
        help="where a --tracking-uri store's artifacts go (default: beside a sqlite file, "
        "else WORKSPACE/mlartifacts)",
    )
    p.set_defaults(func=cmd_mlflow)

    p = sub.add_parser(
        "dashboard", help="optuna-dashboard over a sweep's studies, read-only, on 127.0.0.1"
    )
    p.add_argument("name", nargs="?", help="the sweep (default: the workspace's only sweep)")
    add_workspace(p)
    p.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="show this study database instead of a sweep's, e.g. postgresql://USER:PASSWORD@"
        "HOST/DB",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("status", help="progress of the sweeps in a workspace")
    p.add_argument("name", nargs="?", help="one sweep (default: all)")
    _add_source_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("best", help="best config found for a dataset, per model")
    p.add_argument("dataset")
    p.add_argument("model_word", nargs="?", metavar="MODEL", help="one model (or --model)")
    p.add_argument("--model")
    p.add_argument(
        "--as",
        dest="export",
        choices=("cryobench", "terratorch"),
        help="print the model's best config as a Cryo-Bench (PANGAEA) command or a TerraTorch "
        "config, with what they cannot reproduce",
    )
    _add_source_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_best)

    p = sub.add_parser(
        "report", help="the paper's results table from the best configs, beside the paper's"
    )
    p.add_argument("name", nargs="?", help="one sweep (default: every sweep)")
    _add_source_flags(p)
    p.add_argument("--format", choices=FORMATS, default="md", help="default md")
    p.add_argument("--out", metavar="FILE", help="write the table here (default: stdout)")
    p.add_argument(
        "--plot",
        nargs="?",
        const=DEFAULT_PLOT,
        metavar="PNG",
        help=f"also draw the difference to the reference as a heatmap (default {DEFAULT_PLOT})",
    )
    p.add_argument("--datasets", type=_csv, help="columns KEY,... (default: those with results)")
    p.add_argument("--models", type=_csv, help="rows KEY,... (default: those with results)")
    p.add_argument(
        "--repeats",
        action="append",
        metavar="DIR",
        help="a folder searched for `cryotune train --seeds --out` results (repeatable); "
        "WORKSPACE/repeats is always searched",
    )
    p.add_argument(
        "--reference",
        choices=("paper", "later"),
        default="paper",
        help="the reference table: the paper's (default) or the later README's whole-scene one",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="read-only HTTP API over the sweeps and best configs")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument(
        "--max-age",
        type=_non_negative,
        default=DEFAULT_MAX_AGE_S,
        metavar="SECONDS",
        help=f"answer from what was read this recently, refreshing it in the background "
        f"(default {DEFAULT_MAX_AGE_S:g}; 0: read the source on every request)",
    )
    _add_source_flags(p)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CryotuneError as exc:
        print(f"cryotune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cryotune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

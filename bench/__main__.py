"""``python -m bench``: every benchmark, then the table in docs/benchmarks.md;
``python -m bench NAME [FLAGS]``: one benchmark (``--quick``: a tiny version of it). Quick runs
and runs with ``--out`` leave the table alone."""

from __future__ import annotations

import importlib
import sys

from bench.table import update_table

# Run in this order by ``python -m bench``: the cheap ones first.
BENCHMARKS = (
    "data_path",
    "overhead",
    "concurrent_pairs",
    "time_to_quality",
    "time_to_quality_depth",
    "scale",
)
# Run only when named: needs a GPU for its real figures (bench/gpu.sh runs it).
ON_REQUEST = ("gpu_trainer",)


def run(argv: list[str]) -> int:
    if argv and not argv[0].startswith("-"):
        name, flags = argv[0], argv[1:]
        if name not in BENCHMARKS + ON_REQUEST:
            valid = ", ".join(BENCHMARKS + ON_REQUEST)
            print(f"python -m bench: unknown benchmark '{name}'; valid: {valid}", file=sys.stderr)
            return 2
        importlib.import_module(f"bench.{name}").main(flags)
        if not {"--quick", "--out"} & {f.split("=")[0] for f in flags}:
            print(f"table updated in {update_table()}")
        return 0
    if argv not in ([], ["--quick"]):
        print("python -m bench: give NAME [FLAGS], or only --quick for all", file=sys.stderr)
        return 2
    for name in BENCHMARKS:
        print(f"== bench.{name}", flush=True)
        importlib.import_module(f"bench.{name}").main(argv)
    if not argv:
        print(f"table updated in {update_table()}")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

"""`cryotune train`: one config over N fixed seeds, with per-seed JSON and a mean ± std summary.

Seeds are ``config.seed, config.seed + 1, ...`` so a repeat is reproducible from the command line.
With an output folder, each seed checkpoints under ``checkpoints/seed-N/`` while it trains and
keeps ``best.pt`` when done; rerunning the same command resumes an interrupted seed and reads
finished seeds back from their JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryotune.config import TrialConfig
from cryotune.data.bands import describe_mapping
from cryotune.documents.trial_result import EpochReport, TrialResult, json_safe
from cryotune.errors import UsageError
from cryotune.files import write_text_atomic
from cryotune.table import format_table
from cryotune.train.trainer import LAST, check_names, check_same_config, run_trial

SUMMARY_FILE = "summary.json"


def seed_list(first: int, count: int) -> list[int]:
    return [first + i for i in range(count)]


def seed_file(seed: int) -> str:
    return f"seed-{seed}.json"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class RepeatsResult:
    """The trials of one config over several seeds."""

    config: TrialConfig
    seeds: list[int]
    trials: list[TrialResult]
    out: Path | None

    def summary(self) -> dict:
        val = [t.best_val_miou for t in self.trials]
        test = [t.test_metrics["miou"] for t in self.trials if t.test_metrics is not None]
        val_mean, val_std = mean_std(val)
        test_mean, test_std = mean_std(test) if test else (None, None)
        info = self.trials[0].info if self.trials else {}
        return {
            "config": self.config.model_dump(mode="json"),
            "seeds": self.seeds,
            "weights": info.get("weights"),
            "weights_sha256": info.get("weights_sha256"),
            "filled_bands": info.get("filled_bands"),
            "band_mapping": info.get("band_mapping"),
            "deviations": info.get("deviations"),
            "trainable_params": info.get("trainable_params"),
            "device": info.get("device"),
            "precision": info.get("precision"),
            "runs": [
                {
                    "seed": seed,
                    "best_val_miou": t.best_val_miou,
                    "best_epoch": t.best_epoch,
                    "test_miou": t.test_metrics["miou"] if t.test_metrics else None,
                    "epochs": len_epochs(t),
                    "seconds": t.seconds,
                    "file": seed_file(seed),
                }
                for seed, t in zip(self.seeds, self.trials)
            ],
            "val_miou_mean": val_mean,
            "val_miou_std": val_std,
            "test_miou_mean": test_mean,
            "test_miou_std": test_std,
        }

    def format_table(self) -> str:
        c = self.config
        summary = self.summary()
        rows = [
            (
                r["seed"],
                f"{r['best_val_miou']:.2f}",
                "-" if r["test_miou"] is None else f"{r['test_miou']:.2f}",
                r["best_epoch"],
                r["epochs"],
                f"{r['seconds']:.0f}",
            )
            for r in summary["runs"]
        ]
        if len(rows) > 1:
            test = (
                "-"
                if summary["test_miou_mean"] is None
                else f"{summary['test_miou_mean']:.2f} ± {summary['test_miou_std']:.2f}"
            )
            rows.append(
                (
                    "mean ± std",
                    f"{summary['val_miou_mean']:.2f} ± {summary['val_miou_std']:.2f}",
                    test,
                    "",
                    "",
                    "",
                )
            )
        header = [
            f"{c.dataset} / {c.model}: lr {c.lr:g}, depth {summary_depth(self)}, "
            f"epochs {c.epochs}, batch {c.batch_size}, label fraction {c.label_fraction:g}, "
            f"seeds {', '.join(map(str, self.seeds))}",
            f"weights: {weights_line(summary)}",
            f"input: {describe_mapping(summary['band_mapping']) if summary['band_mapping'] else '-'}",
            f"filled bands: {', '.join(summary['filled_bands'] or []) or 'none'}",
            f"device: {summary['device']} ({summary['precision']}); validated every "
            f"{c.val_every} epochs and after the last",
            f"departures from Cryo-Bench: {'; '.join(summary['deviations'] or []) or 'none'}",
        ]
        if self.out is not None:
            header.append(f"results: {self.out}")
        table = format_table(
            ["seed", "best val mIoU", "test mIoU", "best epoch", "epochs", "seconds"], rows
        )
        return "\n".join(header) + "\n\n" + table


def len_epochs(trial: TrialResult) -> int:
    return trial.history[-1].epoch if trial.history else 0


def summary_depth(result: RepeatsResult) -> str:
    """``depth/blocks`` as built (the model layer resolves a default depth)."""
    info = result.trials[0].info if result.trials else {}
    depth, blocks = info.get("depth", result.config.depth), info.get("num_blocks")
    if blocks is None:
        return str(depth)
    role = " (encoder frozen)" if depth == 0 else " (full finetuning)" if depth == blocks else ""
    return f"{depth}/{blocks}{role}"


def weights_line(summary: dict) -> str:
    weights = summary["weights"]
    if weights in (None, "random"):
        return "random initialisation (no pretrained checkpoint loaded)"
    sha = summary["weights_sha256"]
    return f"{weights} (sha256 {sha[:12]})" if sha else str(weights)


def _finished_trial(config: TrialConfig, path: Path) -> TrialResult | None:
    """The trial recorded at ``path`` if it exists; UsageError if another config wrote it."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        saved = data["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: unreadable trial record ({exc}); delete it to rerun") from exc
    check_same_config(config, saved, path)
    return TrialResult.from_dict(data, str(path))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def train_repeats(
    config: TrialConfig,
    seeds: int,
    out: Path | None,
    echo: Callable[[str], None] = _stderr,
) -> RepeatsResult:
    """Run ``config`` once per seed; progress lines go to ``echo`` (stderr by default)."""
    if seeds < 1:
        raise UsageError(f"--seeds: must be at least 1, got {seeds}")
    check_names(config)
    chosen = seed_list(config.seed, seeds)
    echo(f"training {config.dataset} / {config.model} with seeds {', '.join(map(str, chosen))}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    result = RepeatsResult(config=config, seeds=chosen, trials=[], out=out)
    for n, seed in enumerate(chosen, 1):
        trial_config = config.model_copy(update={"seed": seed})

        def progress(report: EpochReport, seed: int = seed, n: int = n) -> None:
            echo(
                f"seed {seed} ({n}/{len(chosen)}) epoch {report.epoch}/{config.epochs}: "
                f"loss {report.train_loss:.4f}, val mIoU {report.val_miou:.2f}, "
                f"{report.seconds:.1f}s"
            )

        if out is None:
            result.trials.append(run_trial(trial_config, on_epoch=progress))
            continue
        finished = _finished_trial(trial_config, out / seed_file(seed))
        if finished is not None:
            echo(f"seed {seed} ({n}/{len(chosen)}): finished before, read from {seed_file(seed)}")
            result.trials.append(finished)
            continue
        checkpoints = out / "checkpoints" / f"seed-{seed}"
        trial = run_trial(trial_config, on_epoch=progress, checkpoint_dir=checkpoints)
        _write_json(out / seed_file(seed), trial.to_dict())
        (checkpoints / LAST).unlink(missing_ok=True)  # resume state; best.pt stays
        result.trials.append(trial)
    if out is not None:
        _write_json(out / SUMMARY_FILE, json_safe(result.summary()))
    return result

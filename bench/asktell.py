"""Time per Optuna ask and tell through the sweep's own ``StudySearch``, on a study storage.

Several studies share one storage, as a sweep's pairs do, and their trials interleave; each
trial is asked (``suggest``: ask plus the Tune trial id), reports a few epochs
(``on_trial_result``) and is told (``on_trial_complete`` with a final result carrying a
TrialResult, as a finished trial's is). The clock covers those calls alone.
"""

from __future__ import annotations

import json
import statistics
import time

from bench.latency import percentile


def time_ask_tell(url: str, prefix: str, studies: int, trials: int, epochs: int = 3) -> dict:
    """Milliseconds per ask, per epoch reported and per tell (p50, p99, mean)."""
    import optuna

    from bench.simulated import run_trial
    from cryotune.config import TrialConfig
    from cryotune.sweep.keys import FINAL, TRIAL_RESULT
    from cryotune.sweep.space import PairSpace
    from cryotune.sweep.spec import SearchSpace
    from cryotune.sweep.study import SamplerRecipe, StudySearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = PairSpace.resolve(SearchSpace(), 12, True).searched
    searches = [
        StudySearch(space, f"{prefix}/{i}", url, SamplerRecipe("tpe", seed=i), "val_miou")
        for i in range(studies)
    ]
    timed: dict[str, list[float]] = {"ask": [], "report": [], "tell": []}

    def clocked(kind: str, call, *args, **kwargs):
        started = time.perf_counter()
        out = call(*args, **kwargs)
        timed[kind].append(1000 * (time.perf_counter() - started))
        return out

    for number in range(trials):
        for index, search in enumerate(searches):
            trial_id = f"t{index}_{number}"
            params = clocked("ask", search.suggest, trial_id)
            config = TrialConfig(
                dataset="glid",
                model="unet",
                lr=params["lr"],
                depth=params.get("depth", 0),
                epochs=epochs,
                weights="random",
                val_every=1,
            )
            result = run_trial(config)
            for report in result.history:
                metrics = {"epoch": report.epoch, "val_miou": report.val_miou}
                clocked("report", search.on_trial_result, trial_id, metrics)
            final = {
                "epoch": epochs,
                "val_miou": result.history[-1].val_miou,
                "best_val_miou": result.best_val_miou,
                FINAL: True,
                TRIAL_RESULT: json.dumps(result.to_dict()),
            }
            clocked("tell", search.on_trial_complete, trial_id, final)
    out = {"studies": studies, "trials_per_study": trials}
    for kind, values in timed.items():
        ordered = sorted(values)
        out[kind] = {
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(percentile(ordered, 0.99), 2),
            "mean_ms": round(statistics.fmean(ordered), 2),
        }
    return out

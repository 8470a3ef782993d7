"""A sweep resolved into (dataset, model) pairs, each with its space, study and base TrialConfig.

Config flows one way: the spec and flags resolve here, once, into TrialConfigs; trials only add
their sampled hyper-parameters. Everything a pair needs that can fail (unknown names, missing
data, missing weights, an encoder that fits no modality) fails here, before a cluster starts.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cryotune
from cryotune.config import TrialConfig
from cryotune.documents.plan import SweepPlanDocument
from cryotune.errors import UnknownNameError, UsageError
from cryotune.sweep.space import PairSpace
from cryotune.sweep.spec import SweepSpec


@dataclass(frozen=True)
class PairPlan:
    """One (dataset, model) pair: its study, search space, trial budget and fixed settings."""

    sweep: str
    dataset: str
    model: str
    space: PairSpace
    base: TrialConfig
    trials: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.model}"

    @property
    def study_name(self) -> str:
        return f"{self.sweep}/{self.dataset}/{self.model}"

    def trial_config(self, suggested: dict) -> TrialConfig:
        """The TrialConfig of one trial: the base plus the sampled (and fixed) values."""
        return TrialConfig(**{**self.base.model_dump(), **self.space.params(suggested)})

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "dataset": self.dataset,
            "model": self.model,
            "study_name": self.study_name,
            "trials": self.trials,
            "space": self.space.to_dict(),
            "base_config": self.base.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class SweepPlan:
    name: str
    spec: SweepSpec
    datasets: tuple[str, ...]
    pairs: tuple[PairPlan, ...]
    skipped: tuple[str, ...]
    weights: str | None
    data_roots: dict[str, str]
    tracking_uri: str | None = None

    def pair(self, key: str) -> PairPlan:
        return next(p for p in self.pairs if p.key == key)

    def identity(self) -> dict:
        """What must match for ``--resume`` to continue this sweep (the tracking URI is checked
        apart, with its own message: see ``cryotune.sweep.driver.prepare``)."""
        return {
            "datasets": list(self.datasets),
            "pairs": [p.key for p in self.pairs],
            "spec": self.spec.model_dump(mode="json"),
            "weights": self.weights,
            "data_roots": self.data_roots,
        }

    def document(self, storage: str | None = None) -> SweepPlanDocument:
        """The plan as ``sweep.json`` stores it; ``storage``: the Tune experiment's location."""
        return SweepPlanDocument(
            name=self.name,
            **self.identity(),
            skipped=list(self.skipped),
            pair_plans=[p.to_dict() for p in self.pairs],
            tracking_uri=self.tracking_uri,
            cryotune_version=cryotune.__version__,
            git_commit=git_commit(),
            storage=storage,
        )


def identity_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two plan identities."""
    out: list[str] = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            out.append(prefix)

    walk({k: old.get(k) for k in new}, new, "")
    return out


def git_commit() -> str | None:
    """The commit of the cryotune source tree when it is a git checkout, else None."""
    source = Path(cryotune.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _fits(dataset_spec, encoder_spec, view: str | None = None) -> bool:
    from cryotune.data.bands import map_bands

    views = [m.name for m in dataset_spec.modalities]
    if view is not None and view not in views:
        raise UsageError(
            f"trial.view {view}: dataset '{dataset_spec.key}' has no such view; valid: "
            f"{', '.join(views)}"
        )
    try:
        map_bands(dataset_spec, encoder_spec.bands, encoder_spec.key, view)
    except UsageError:
        return False
    return True


def view_notes(plan: SweepPlan) -> list[str]:
    """One line per pair on a dataset whose views Cryo-Bench chose per model (SICD, CaFFe):
    the view its model reads, and why."""
    from cryotune.data.bands import map_bands
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import ENCODERS

    notes = []
    for pair in plan.pairs:
        dataset = get_dataset(pair.dataset)
        if not dataset.paper_views:
            continue
        encoder = ENCODERS[pair.model]
        mapping = map_bands(dataset, encoder.bands, encoder.key, pair.base.view)
        notes.append(f"{pair.key} reads {mapping.describe()}")
    return notes


def select_models(
    datasets: list[str], requested: list[str] | None, view: str | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(dataset, model) pairs to sweep and the requested pairs skipped for lack of a modality.

    ``requested`` None or ``["all"]``: every registered model that fits each dataset (on
    ``view`` when given, else on the view Cryo-Bench ran it on).
    """
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import ENCODERS

    explicit = requested is not None and requested != ["all"]
    models = list(dict.fromkeys(requested)) if explicit else list(ENCODERS)
    for key in models:
        if key not in ENCODERS:
            raise UnknownNameError("model", key, ENCODERS)
    pairs, skipped = [], []
    for dataset in datasets:
        spec = get_dataset(dataset)
        for model in models:
            if _fits(spec, ENCODERS[model], view):
                pairs.append((dataset, model))
            elif explicit:
                skipped.append(f"{dataset}/{model}")
    if explicit:
        for model in models:
            if all(m != model for _, m in pairs):
                raise UsageError(
                    f"--models {model}: fits none of {', '.join(datasets)} (no modality in "
                    "common); `cryotune models` lists the bands each model takes"
                )
    if not pairs:
        raise UsageError(f"no registered model fits {', '.join(datasets)}")
    return pairs, skipped


def resolve_data_roots(datasets: list[str], data_root: list[str] | None) -> dict[str, str]:
    """Each dataset's folder from ``--data-root KEY=DIR`` or ``--data-root DIR`` (holding KEY/)."""
    from cryotune.data.roots import DataRoots, resolve_root

    given = DataRoots.parse(data_root, datasets, "a swept dataset")
    return {key: str(resolve_root(key, given.folder(key)).resolve()) for key in datasets}


def plan_sweep(
    spec: SweepSpec,
    name: str,
    datasets: list[str],
    models: list[str] | None = None,
    data_root: list[str] | None = None,
    weights: str | None = None,
    cache_dir: str | None = None,
    tracking_uri: str | None = None,
) -> SweepPlan:
    """Resolve a spec and command-line choices into pairs, checking names, data and weights."""
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import ENCODERS
    from cryotune.models.segmenter import check_crop
    from cryotune.weights.needs import check_pairs_weights

    datasets = list(dict.fromkeys(datasets))
    for key in datasets:
        get_dataset(key)
    requested = models if models is not None else (list(spec.models) if spec.models else None)
    pairs, skipped = select_models(datasets, requested, spec.trial.get("view"))
    weights = weights if weights is not None else spec.trial.get("weights")
    check_pairs_weights(pairs, weights, spec.trial.get("view"))
    roots = resolve_data_roots(datasets, data_root)
    fixed = {**spec.trial, "epochs": spec.epochs, "weights": weights}
    if cache_dir is not None and "cache_dir" not in spec.trial:
        fixed["cache_dir"] = cache_dir
    plans = []
    for dataset, model in pairs:
        encoder = ENCODERS[model]
        space = PairSpace.resolve(spec.space, encoder.num_blocks, encoder.pretrained)
        base = TrialConfig(
            dataset=dataset,
            model=model,
            data_root=roots[dataset],
            depth=space.fixed.get("depth", 0),
            **fixed,
        )
        check_crop(
            encoder,
            get_dataset(dataset),
            base.crop_size or encoder.input_size_for(get_dataset(dataset)),
            base.neck_pool,
        )
        trials = spec.budget.trials if spec.budget.trials is not None else space.grid_size()
        plans.append(PairPlan(name, dataset, model, space, base, trials))
    return SweepPlan(
        name=name,
        spec=spec,
        datasets=tuple(datasets),
        pairs=tuple(plans),
        skipped=tuple(skipped),
        weights=weights,
        data_roots=roots,
        tracking_uri=tracking_uri,
    )

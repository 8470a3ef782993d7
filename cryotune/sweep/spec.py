"""Sweep specs (``sweeps/*.yaml``): what a sweep searches, how it samples, stops and spends.

A spec is typed and strict: an unknown key, a value of the wrong type or an inverted range is a
UsageError naming the file and the dotted key. The defaults are the paper protocol
(``sweeps/default.yaml``). A spec resolves into TrialConfigs (``cryotune.sweep.plan``); fixed
training settings live under ``trial:`` with the TrialConfig's own field names and checks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cryotune.config import TrialConfig
from cryotune.errors import UsageError

# TrialConfig fields the sweep sets itself: per pair, per trial, or from the scheduler.
SWEEP_OWNED_FIELDS = frozenset({"dataset", "model", "lr", "depth", "epochs"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatSpace(_Strict):
    """A float searched log-uniformly in [low, high], or taken from a fixed grid."""

    low: float | None = Field(None, gt=0)
    high: float | None = Field(None, gt=0)
    grid: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatSpace:
        has_range = self.low is not None or self.high is not None
        if has_range == (self.grid is not None):
            raise ValueError("give either low and high (log-uniform) or grid (a list of values)")
        if has_range:
            if self.low is None or self.high is None:
                raise ValueError("give both low and high")
            if self.low >= self.high:
                raise ValueError(
                    f"inverted range: low {self.low:g} is not below high {self.high:g}"
                )
        elif not self.grid or any(v < 0 for v in self.grid):
            raise ValueError("grid must list at least one value, none negative")
        return self

    @property
    def is_grid(self) -> bool:
        return self.grid is not None

    def to_dict(self) -> dict:
        return self.model_dump(exclude_none=True)


class DepthSpace(_Strict):
    """Finetuning depth: trailing encoder blocks that train.

    Exactly one of ``blocks`` (counts, clipped to the encoder's blocks), ``fractions`` (of the
    encoder's blocks, rounded) or ``fraction_range`` (every block count between two fractions).
    """

    blocks: tuple[int, ...] | None = None
    fractions: tuple[float, ...] | None = None
    fraction_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> DepthSpace:
        given = [
            k for k in ("blocks", "fractions", "fraction_range") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of blocks, fractions or fraction_range")
        if self.blocks is not None and (not self.blocks or min(self.blocks) < 0):
            raise ValueError("blocks must list at least one count, none negative")
        if self.fractions is not None and (
            not self.fractions or not all(0 <= f <= 1 for f in self.fractions)
        ):
            raise ValueError("fractions must list at least one value, each in [0, 1]")
        if self.fraction_range is not None:
            low, high = self.fraction_range
            if not (0 <= low <= 1 and 0 <= high <= 1):
                raise ValueError("fraction_range bounds must lie in [0, 1]")
            if low > high:
                raise ValueError(f"inverted range: fraction_range [{low:g}, {high:g}]")
        return self

    @property
    def is_discrete(self) -> bool:
        return self.fraction_range is None

    def to_dict(self) -> dict:
        return self.model_dump(exclude_none=True)


class SearchSpace(_Strict):
    lr: FloatSpace = FloatSpace(low=1e-6, high=1e-3)
    depth: DepthSpace = DepthSpace(fraction_range=(0.0, 1.0))
    weight_decay: FloatSpace | None = None
    batch_size: tuple[int, ...] | None = Field(None, description="choices, searched when given")

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        if self.batch_size is not None and (not self.batch_size or min(self.batch_size) < 1):
            raise ValueError("batch_size must list at least one positive size")
        if self.lr.grid is not None and min(self.lr.grid) <= 0:
            raise ValueError("lr grid values must be positive")
        return self


class SamplerSpec(_Strict):
    """Optuna sampler. ``tpe`` with ``constant_liar`` treats running trials as bad guesses, so
    parallel trials spread out; ``grid`` runs every point of a fully discrete space once."""

    kind: Literal["tpe", "grid", "random"] = "tpe"
    multivariate: bool = True
    seed: int = 0
    startup_trials: int = Field(10, ge=0)
    constant_liar: bool = True


class SchedulerSpec(_Strict):
    """ASHA on the validation mIoU with the epoch as time; ``none`` runs every trial to the end."""

    kind: Literal["asha", "none"] = "asha"
    metric: Literal["val_miou", "best_val_miou"] = "val_miou"
    grace_period: int = Field(5, ge=1, description="epochs before a trial may be stopped")
    reduction_factor: float = Field(3.0, gt=1)
    max_epochs: int = Field(80, ge=1, description="epochs of a trial that is never stopped")
    bootstrap_trials: int = Field(
        0,
        ge=0,
        description="per pair, trials that stop at the grace period before any trial trains past "
        "it, so ASHA's first promotions are judged against others (Optuna's bootstrap_count)",
    )

    @model_validator(mode="after")
    def _check(self) -> SchedulerSpec:
        if self.kind == "asha" and self.grace_period > self.max_epochs:
            raise ValueError(
                f"grace_period {self.grace_period} exceeds max_epochs {self.max_epochs}"
            )
        return self

    def rungs(self) -> list[float]:
        """The epochs at which ASHA compares trials, as Ray's ``AsyncHyperBandScheduler``
        places them: grace_period x reduction_factor^k below ``max_epochs``' rung count."""
        if self.kind != "asha":
            return []
        count = int(
            math.log(self.max_epochs / self.grace_period) / math.log(self.reduction_factor) + 1
        )
        return [self.grace_period * self.reduction_factor**k for k in range(count)]


def validated_epochs(val_every: int, epochs: int) -> list[int]:
    """The epochs a trial validates at: every ``val_every`` and the last."""
    return sorted({*range(val_every, epochs + 1, val_every), epochs})


def _epochs_words(epochs: list[int]) -> str:
    return (
        ", ".join(map(str, epochs))
        if len(epochs) <= 5
        else (f"{epochs[0]}, {epochs[1]}, ..., {epochs[-1]}")
    )


class BudgetSpec(_Strict):
    """Per pair: how many trials, for how long, and how failures are handled."""

    trials: int | None = Field(20, ge=1, description="trials per pair; null: the grid size")
    time_s: float | None = Field(
        None, gt=0, description="per pair: no trial starts after this many seconds"
    )
    retries: int = Field(1, ge=0, description="restarts of a failing trial from its checkpoint")
    max_failed_trials: int = Field(3, ge=1, description="a pair starts no trial after these")


class ResourceSpec(_Strict):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial")
    gpu: float | None = Field(
        None, ge=0, description="GPUs per trial; null: derived from model size and depth"
    )
    gpu_memory_gb: float | None = Field(
        None, gt=0, description="memory of one GPU for that derivation; null: detected"
    )
    max_concurrent: int | None = Field(None, ge=1, description="trials at once, all pairs")


class SweepSpec(_Strict):
    """One sweep: the search space, sampler, scheduler, budget and resources of every pair."""

    name: str | None = Field(None, description="defaults to the file name")
    description: str = ""
    models: tuple[str, ...] | None = Field(None, description="null: every model that fits")
    space: SearchSpace = SearchSpace()
    sampler: SamplerSpec = SamplerSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    budget: BudgetSpec = BudgetSpec()
    resources: ResourceSpec = ResourceSpec()
    trial: dict[str, Any] = Field(
        default_factory=dict, description="fixed TrialConfig fields for every trial"
    )
    optuna_storage: str | None = Field(
        None,
        pattern=r"^[a-z0-9+]+://",
        description="study storage URL for a cluster (postgresql://...); null: the workspace's",
    )
    keep_checkpoints: Literal["best", "all", "none"] = Field(
        "best",
        description="best: when a pair ends, keep only its best trial's best.pt; all: every "
        "trial's; none: no weights (the record's repeat command retrains the best config)",
    )

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        valid = sorted(set(TrialConfig.model_fields) - SWEEP_OWNED_FIELDS)
        for key in self.trial:
            if key not in valid:
                owned = " (set by the sweep)" if key in SWEEP_OWNED_FIELDS else ""
                raise ValueError(f"trial.{key}: unknown key{owned}; valid: {', '.join(valid)}")
        for key in ("weight_decay", "batch_size"):
            if getattr(self.space, key) is not None and key in self.trial:
                raise ValueError(f"trial.{key}: searched in space.{key}; give it in one place")
        try:
            TrialConfig(dataset="-", model="-", **self.trial)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"trial.{loc}: {_message(err)}") from None
        if self.sampler.kind == "grid":
            if not self.space.lr.is_grid:
                raise ValueError("sampler.kind grid needs space.lr.grid")
            if not self.space.depth.is_discrete:
                raise ValueError("sampler.kind grid needs space.depth.blocks or .fractions")
            if self.space.weight_decay is not None and not self.space.weight_decay.is_grid:
                raise ValueError("sampler.kind grid needs space.weight_decay.grid")
        elif self.budget.trials is None:
            raise ValueError("budget.trials: null (the grid size) needs sampler.kind grid")
        self._check_rungs_are_validated()
        bootstrap, trials = self.scheduler.bootstrap_trials, self.budget.trials
        if self.scheduler.kind == "asha" and trials is not None and bootstrap >= trials:
            raise ValueError(
                f"scheduler.bootstrap_trials {bootstrap} must be below budget.trials "
                f"{trials}: otherwise no trial trains past the grace period"
            )
        return self

    def _check_rungs_are_validated(self) -> None:
        """ASHA compares trials at its rungs; a rung that falls between validations would
        compare each trial's score of a later epoch, so such a spec is refused."""
        val_every = int(self.trial.get("val_every", TrialConfig.model_fields["val_every"].default))
        validated = validated_epochs(val_every, self.scheduler.max_epochs)
        off = [r for r in self.scheduler.rungs() if r not in validated]
        if off:
            rungs = ", ".join(f"{r:g}" for r in self.scheduler.rungs())
            raise ValueError(
                f"scheduler: ASHA compares trials at epochs {rungs} (grace_period "
                f"{self.scheduler.grace_period} x reduction_factor "
                f"{self.scheduler.reduction_factor:g}^k), but trials validate at epochs "
                f"{_epochs_words(validated)} (trial.val_every {val_every} and the last): epoch "
                f"{off[0]:g} is not validated; make grace_period a multiple of {val_every} with "
                "a whole reduction_factor, or set trial.val_every"
            )

    @property
    def epochs(self) -> int:
        return self.scheduler.max_epochs


def _message(err: dict) -> str:
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def _valid_keys(loc: tuple) -> list[str]:
    """The keys allowed beside the offending one, found by walking the spec's fields."""
    model: Any = SweepSpec
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return []
    return sorted(model.model_fields)


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming the source and the dotted key of the first problem."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not isinstance(p, int) or err["type"] != "extra_forbidden")
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        valid = _valid_keys(loc)
        hint = f"; valid keys: {', '.join(valid)}" if valid else ""
        return f"{source}: {key}: unknown key{hint}"
    msg = _message(err)
    if msg.startswith("trial.") or not key:
        return f"{source}: {msg}"
    return f"{source}: {key}: {msg}"


def parse_spec(data: Any, source: str, default_name: str | None = None) -> SweepSpec:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a sweep spec is a mapping of keys, got {type(data).__name__}")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc, source)) from None
    if spec.name is None and default_name is not None:
        spec = spec.model_copy(update={"name": default_name})
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file; its name defaults to the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--spec {path}: no such file; give a sweeps/NAME.yaml path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    return parse_spec(data, str(path), default_name=path.stem)


def with_overrides(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """A copy with command-line overrides applied (dotted keys, None values skipped), revalidated.

    ``scheduler.max_epochs`` below the grace period shortens the grace period with it.
    """
    data = spec.model_dump(mode="python")
    for dotted, value in changes.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    scheduler = data["scheduler"]
    scheduler["grace_period"] = min(scheduler["grace_period"], scheduler["max_epochs"])
    return parse_spec(data, "command line")

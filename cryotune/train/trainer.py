"""One trial: train a segmenter with the Cryo-Bench protocol, validate, test the best checkpoint.

Every protocol default (AdamW, MultiStepLR at 60%/90% of iterations, batch 8, random crop to the
encoder input, cross-entropy with the ignore index) comes from the TrialConfig and can be
overridden there. The trainer knows nothing of Ray: a sweep reports through ``on_epoch`` and stops
a trial by raising from it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import cryotune
from cryotune.config import TrialConfig
from cryotune.documents.trial_result import EpochReport, TrialResult
from cryotune.errors import CryotuneError, UsageError
from cryotune.files import replacing
from cryotune.protocol import deviations
from cryotune.train.metrics import ConfusionMatrix
from cryotune.train.preview import write_preview
from cryotune.train.sliding_window import sliding_window_logits

if TYPE_CHECKING:
    from cryotune.data.datasets import DatasetSpec
    from cryotune.models.segmenter import BuiltModel, CustomEncoder

LAST = "last.pt"
BEST = "best.pt"

# Fields that may differ between a checkpoint and the config resuming it: they say where things
# are and how they are computed, not what is trained.
RELOCATABLE_FIELDS = frozenset({"data_root", "cache_dir", "weights", "num_workers", "device"})


@dataclass(frozen=True)
class Runtime:
    """Device-dependent choices: precision, memory layout, transfers."""

    device: torch.device
    requested_precision: str = "bf16"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def bf16(self) -> bool:
        return self.cuda and self.requested_precision == "bf16"

    @property
    def precision(self) -> str:
        """What the trial computes in: bf16 autocast on CUDA when asked, else fp32."""
        return "bf16-mixed" if self.bf16 else "fp32"

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16)

    def to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        memory_format = torch.channels_last if self.cuda else torch.contiguous_format
        return {
            k: v.to(self.device, non_blocking=True, memory_format=memory_format)
            for k, v in inputs.items()
        }

    def reset_peak_memory(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_mb(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else None


@dataclass
class TrainingState:
    """Everything ``last.pt`` holds besides the model, optimizer and scheduler."""

    epoch: int = 0
    best_epoch: int = 0
    best_val_miou: float = -1.0
    best_val_metrics: dict = field(default_factory=dict)
    history: list[EpochReport] = field(default_factory=list)
    diverged_at_epoch: int | None = None


def select_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a usage error."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise UsageError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def open_splits(
    dataset: str, root: str, cache_dir: str | None, modalities: tuple[str, ...] = ()
) -> dict:
    """The decoded splits holding ``modalities``; the tile cache decodes once per node and
    re-checks files each trial."""
    from cryotune.data.cache import TileCache
    from cryotune.data.datasets import get_dataset

    spec = get_dataset(dataset)
    cache = TileCache(Path(cache_dir) if cache_dir else None)
    return {
        split: cache.open(spec, Path(root), split, modalities) for split in ("train", "val", "test")
    }


def check_names(config: TrialConfig) -> DatasetSpec:
    """The config's DatasetSpec, after checking that its dataset and model keys exist."""
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import get_encoder_spec

    spec = get_dataset(config.dataset)
    get_encoder_spec(config.model)
    return spec


@dataclass
class PreparedTrial:
    """A trial's model, data and optimisation, built from its config before the first epoch."""

    spec: DatasetSpec
    root: Path
    built: BuiltModel
    model: nn.Module
    splits: dict
    train_loader: DataLoader
    val_loader: DataLoader
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    crop_size: int | None
    window: int | None
    steps_per_epoch: int
    total_steps: int


def prepare_trial(
    config: TrialConfig, runtime: Runtime, custom: CustomEncoder | None = None
) -> PreparedTrial:
    """Names, data root and weights are checked before the (possibly long) tile decoding."""
    from cryotune.data.roots import resolve_root
    from cryotune.data.segmentation import (
        SegmentationData,
        evaluation_loader,
        training_loader,
    )
    from cryotune.models.segmenter import build_segmenter, check_crop

    spec = check_names(config)
    root = resolve_root(config.dataset, config.data_root)
    seed_everything(config.seed)
    built = build_segmenter(config, spec, custom)
    splits = open_splits(spec.key, str(root), config.cache_dir, built.mapping.dataset_modalities)
    seed_everything(config.seed)  # the same stream whether or not the cache was just built

    model = built.model.to(runtime.device)
    if runtime.cuda and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)

    indices = None
    if config.label_fraction < 1:
        from cryotune.data.fewshot import stratified_subset

        indices = stratified_subset(
            splits["train"].class_ratios, config.label_fraction, config.seed
        )
    crop_size = train_crop_size(config.crop_size, built.input_size, splits["train"], spec.tile_size)
    check_crop(built.spec, spec, crop_size, config.neck_pool)
    train_data = SegmentationData(
        splits["train"], built.mapping, crop_size=crop_size, train=True, indices=indices
    )
    if len(train_data) == 0:
        raise CryotuneError(f"{spec.key}: the train split under {root} holds no tiles")
    generator = torch.Generator().manual_seed(config.seed)
    # Workers are not persistent: each epoch's workers are seeded from ``generator``, whose state
    # the checkpoint holds, so a resumed run draws the same crops as a straight one.
    train_loader = training_loader(
        train_data,
        config.batch_size,
        num_workers=config.num_workers,
        pin_memory=runtime.cuda,
        generator=generator,
        worker_init_fn=_seed_worker,
    )
    val_data = SegmentationData(splits["val"], built.mapping, None, False)
    steps_per_epoch = len(train_loader)
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer,
        milestones=[max(1, int(m * total_steps)) for m in config.milestones],
        gamma=config.gamma,
    )
    return PreparedTrial(
        spec=spec,
        root=root,
        built=built,
        model=model,
        splits=splits,
        train_loader=train_loader,
        val_loader=evaluation_loader(val_data, pin_memory=runtime.cuda),
        generator=generator,
        optimizer=optimizer,
        scheduler=scheduler,
        crop_size=crop_size,
        window=eval_window(crop_size, built.input_size),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )


def train_epoch(trial: PreparedTrial, runtime: Runtime) -> float:
    """One pass of at most ``steps_per_epoch`` iterations; the mean training loss."""
    model, optimizer, scheduler = trial.model, trial.optimizer, trial.scheduler
    ignore_index = trial.spec.ignore_index
    model.train()
    loss_sum = torch.zeros((), device=runtime.device)
    steps = 0
    for batch in _take(trial.train_loader, trial.steps_per_epoch):
        inputs = runtime.to_device(batch["inputs"])
        mask = batch["mask"].to(runtime.device, non_blocking=True)
        with runtime.autocast():
            logits = model(inputs)
        loss = masked_cross_entropy(logits.float(), mask, ignore_index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach()
        steps += 1
    return float(loss_sum) / max(steps, 1)


def run_trial(
    config: TrialConfig,
    on_epoch: Callable[[EpochReport], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    on_start: Callable[[dict], None] | None = None,
    custom: CustomEncoder | None = None,
) -> TrialResult:
    """Train ``config`` for its epochs, validating every ``val_every`` and after the last.

    With ``checkpoint_dir``, ``last.pt`` and (on improvement) ``best.pt`` are written atomically
    after each evaluation, before ``on_epoch``; ``resume`` continues from an existing ``last.pt``;
    after the test pass a prediction preview (``preview.npz``) is written there too.
    ``on_start`` receives the built model's info (trainable parameters, filled bands, ...) before
    the first epoch. ``custom`` trains an encoder outside the registry (``CustomEncoder``).
    """
    started = time.perf_counter()
    runtime = Runtime(select_device(config.device), config.precision)
    if runtime.cuda:
        torch.backends.cudnn.benchmark = True
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    trial = prepare_trial(config, runtime, custom)
    model, spec = trial.model, trial.spec
    max_batch = config.batch_size

    state = TrainingState()
    best_weights: dict[str, torch.Tensor] | None = None
    if ckpt_dir is not None and resume and (ckpt_dir / LAST).exists():
        state = _load_last(ckpt_dir / LAST, config, trial)
    started_info = {**trial.built.info, **trial_protocol(config, trial, runtime)}
    if on_start is not None:
        on_start(dict(started_info))

    since_report = time.perf_counter()
    runtime.reset_peak_memory()
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if state.diverged_at_epoch is not None:
            break
        train_loss = train_epoch(trial, runtime)
        state.epoch = epoch
        if not math.isfinite(train_loss):
            state.diverged_at_epoch = epoch  # evaluated once more, then the trial ends
        elif epoch % config.val_every and epoch != config.epochs:
            if ckpt_dir is not None:  # a killed trial resumes from its last epoch
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                _save_last(ckpt_dir / LAST, config, trial, state)
            continue

        val = evaluate(model, trial.val_loader, spec, trial.window, runtime, max_batch)
        improved = val["miou"] > state.best_val_miou
        if improved:
            state.best_epoch, state.best_val_miou, state.best_val_metrics = epoch, val["miou"], val
            best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        report = EpochReport(
            epoch=epoch,
            train_loss=train_loss,
            val_miou=val["miou"],
            per_class_iou=val["iou"],
            lr=trial.optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - since_report,
            val_metrics=val,
            peak_memory_mb=runtime.peak_memory_mb(),
            checkpoint_dir=str(ckpt_dir) if ckpt_dir is not None else None,
        )
        state.history.append(report)
        if ckpt_dir is not None:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            if improved:
                _atomic_save({"model": best_weights, "epoch": epoch}, ckpt_dir / BEST)
            _save_last(ckpt_dir / LAST, config, trial, state)
        if on_epoch is not None:
            on_epoch(report)
        since_report = time.perf_counter()
        runtime.reset_peak_memory()

    test_metrics = None
    if config.evaluate_test and state.best_epoch > 0:
        if best_weights is None and ckpt_dir is not None and (ckpt_dir / BEST).exists():
            saved = torch.load(ckpt_dir / BEST, map_location="cpu", weights_only=True)
            best_weights = saved["model"]
        if best_weights is not None:
            model.load_state_dict(best_weights)
        from cryotune.data.segmentation import SegmentationData, evaluation_loader

        test_data = SegmentationData(trial.splits["test"], trial.built.mapping, None, False)
        test_loader = evaluation_loader(test_data, pin_memory=runtime.cuda)
        test_metrics = evaluate(model, test_loader, spec, trial.window, runtime, max_batch)
        if ckpt_dir is not None:
            write_preview(
                model,
                trial.val_loader.dataset,
                trial.built.mapping,
                spec.classes,
                trial.window,
                runtime,
                ckpt_dir,
                max_batch,
            )

    info = {
        **started_info,
        "band_mapping": trial.built.mapping.to_dict(),
        "data_root": str(trial.root),
        "data_fingerprints": {name: split.fingerprint for name, split in trial.splits.items()},
        "train_tiles": len(trial.train_loader.dataset),
        "val_tiles": len(trial.val_loader.dataset),
        "crop_size": trial.crop_size,
        "eval_window": trial.window,
        "steps_per_epoch": trial.steps_per_epoch,
        "total_steps": trial.total_steps,
        "device": str(runtime.device),
        "seed": config.seed,
        "cryotune_version": cryotune.__version__,
        "torch_version": torch.__version__,
        "diverged_at_epoch": state.diverged_at_epoch,
    }
    return TrialResult(
        config=config,
        history=state.history,
        best_epoch=state.best_epoch,
        best_val_miou=state.best_val_miou,
        best_val_metrics=state.best_val_metrics,
        test_metrics=test_metrics,
        info=info,
        seconds=time.perf_counter() - started,
    )


def trial_protocol(config: TrialConfig, trial: PreparedTrial, runtime: Runtime) -> dict:
    """The precision computed in, the validation cadence, and departures from Cryo-Bench."""
    built = trial.built.info
    values = {
        "val_every": config.val_every,
        "precision": "bf16" if runtime.bf16 else "fp32",
        "neck_pool": config.neck_pool,
        "swin_taps": config.swin_taps,
        "view": built["view"],
    }
    return {
        "precision": runtime.precision,
        "val_every": config.val_every,
        "deviations": deviations(values, set(built["protocol_settings"]), built["paper_view"]),
    }


def train_crop_size(
    crop_size: int | None, input_size: int | None, train_split, tile_size: int
) -> int | None:
    """The config's crop, else the encoder input; None (whole tiles) only if all tiles match.

    Models without an input size (the U-Net) train on whole tiles as in Cryo-Bench; when tiles
    differ in size (scenes) they cannot be batched, so they are cropped to the dataset tile size.
    """
    if crop_size is not None:
        return crop_size
    if input_size is not None:
        return input_size
    shapes = {tuple(s) for s in train_split.shapes.tolist()}
    return None if len(shapes) <= 1 else tile_size


def eval_window(crop_size: int | None, input_size: int | None) -> int | None:
    """Sliding windows of the size the model trained on; None (whole tiles) for the U-Net.

    With the protocol's defaults that is the encoder input size; a smaller ``crop_size`` (smoke
    runs) evaluates on windows of the crop, the input size the model actually learned.
    """
    return None if input_size is None else crop_size


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels; 0 (not NaN) for a batch with none."""
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    spec: DatasetSpec,
    window: int | None,
    runtime: Runtime,
    max_batch: int | None = None,
) -> dict:
    """Sliding-window inference over every item of ``loader``; metrics of one confusion matrix."""
    model.eval()
    num_classes = spec.num_classes
    matrix = ConfusionMatrix(num_classes, spec.ignore_index, runtime.device)
    for batch in loader:
        inputs = runtime.to_device(batch["inputs"])
        mask = batch["mask"].to(runtime.device, non_blocking=True)
        with runtime.autocast():
            logits = sliding_window_logits(model, inputs, window, num_classes, max_batch)
        matrix.update_from_logits(logits, mask)
    return matrix.compute()


def _take(loader: DataLoader, steps: int) -> Iterator:
    for step, batch in enumerate(loader):
        if step >= steps:
            return
        yield batch


def _atomic_save(obj: object, path: Path) -> None:
    with replacing(path) as temp:
        torch.save(obj, temp)


def _rng_states(generator: torch.Generator) -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state(),
    }


def _set_rng_states(states: dict, generator: torch.Generator) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    generator.set_state(states["loader"])


def _save_last(path: Path, config: TrialConfig, trial: PreparedTrial, state: TrainingState) -> None:
    _atomic_save(
        {
            "config": config.model_dump(mode="json"),
            "model": trial.model.state_dict(),
            "optimizer": trial.optimizer.state_dict(),
            "scheduler": trial.scheduler.state_dict(),
            "epoch": state.epoch,
            "best_epoch": state.best_epoch,
            "best_val_miou": state.best_val_miou,
            "best_val_metrics": state.best_val_metrics,
            "history": [r.model_dump() for r in state.history],
            "diverged_at_epoch": state.diverged_at_epoch,
            "rng": _rng_states(trial.generator),
        },
        path,
    )


def check_same_config(config: TrialConfig, saved: dict, path: Path) -> None:
    """UsageError unless ``saved`` (a dumped config) trains what ``config`` trains."""
    ours = config.model_dump(mode="json")
    differing = sorted(
        k
        for k in set(ours) | set(saved)
        if k not in RELOCATABLE_FIELDS and ours.get(k) != saved.get(k)
    )
    if differing:
        changes = ", ".join(f"{k} {saved.get(k)!r} -> {ours.get(k)!r}" for k in differing)
        raise UsageError(
            f"{path} was written by a different config ({changes}); "
            "use another output folder or delete it to start over"
        )


def _load_last(path: Path, config: TrialConfig, trial: PreparedTrial) -> TrainingState:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CryotuneError(f"{path}: cannot read the trial checkpoint ({exc})") from exc
    check_same_config(config, saved["config"], path)
    trial.model.load_state_dict(saved["model"])
    trial.optimizer.load_state_dict(saved["optimizer"])
    trial.scheduler.load_state_dict(saved["scheduler"])
    _set_rng_states(saved["rng"], trial.generator)
    return TrainingState(
        epoch=saved["epoch"],
        best_epoch=saved["best_epoch"],
        best_val_miou=saved["best_val_miou"],
        best_val_metrics=saved["best_val_metrics"],
        history=[EpochReport(**r) for r in saved["history"]],
        diverged_at_epoch=saved["diverged_at_epoch"],
    )

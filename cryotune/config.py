"""The trial config: everything one training run needs, validated once, passed one way to builders.

Sweep specs (``cryotune.sweep.spec``) resolve into TrialConfigs; builders never read flags,
environment variables or files of their own beyond what a TrialConfig names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrialConfig(BaseModel):
    """One training run: a model on a dataset with one learning rate and one finetuning depth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="dataset key (`cryotune datasets`)")
    model: str = Field(description="encoder key (`cryotune models`)")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate")
    depth: int | None = Field(
        None,
        ge=0,
        description="trailing encoder blocks that train: 0 frozen, the block count full; "
        "None: frozen for pretrained encoders, full for from-scratch baselines",
    )
    epochs: int = Field(80, ge=1, description="training epochs")
    batch_size: int = Field(8, ge=1, description="tiles per training batch")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    milestones: tuple[float, ...] = Field(
        (0.6, 0.9), description="MultiStepLR milestones as fractions of all iterations"
    )
    gamma: float = Field(0.1, gt=0, description="MultiStepLR factor at each milestone")
    label_fraction: float = Field(1.0, gt=0, le=1, description="few-shot fraction of train tiles")
    seed: int = Field(234, description="seed of the few-shot draw, initialisation and batches")
    data_root: str | None = Field(None, description="dataset folder; else $CRYOTUNE_DATA/<key>")
    weights: str | None = Field(
        None, description="'random', a folder of checkpoints, or None for $CRYOTUNE_WEIGHTS"
    )
    cache_dir: str | None = Field(None, description="tile cache folder; else a per-user default")
    crop_size: int | None = Field(None, ge=8, description="train crop; None: the encoder's input")
    val_every: int = Field(
        5, ge=1, description="validate every N epochs and after the last (Cryo-Bench: 5)"
    )
    view: str | None = Field(
        None,
        description="dataset view the encoder reads (sar, optical); None: the one Cryo-Bench "
        "ran it on",
    )
    precision: Literal["bf16", "fp32"] = Field(
        "bf16",
        description="on CUDA: bf16 autocast, or fp32 as Cryo-Bench ran (paper-comparable); "
        "the CPU always computes in fp32",
    )
    neck_pool: Literal["floor", "ceil"] = Field(
        "floor",
        description="rounding of the ViT neck's x0.5 max-pool: floor as PANGAEA, or ceil "
        "(keeps odd maps' last row and column)",
    )
    swin_taps: Literal["merged", "stages"] = Field(
        "merged",
        description="GFM-Swin features: after each stage's patch merging as PANGAEA "
        "(256,512,1024,1024 channels), or the stage outputs (128..1024 at strides 4..32)",
    )
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap for smoke runs")
    num_workers: int = Field(0, ge=0, description="data-loading processes (0: in the trainer)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    evaluate_test: bool = Field(True, description="score the best checkpoint on the test split")

    @model_validator(mode="after")
    def _check(self) -> TrialConfig:
        if list(self.milestones) != sorted(self.milestones) or not all(
            0 < m <= 1 for m in self.milestones
        ):
            raise ValueError("milestones must be increasing fractions in (0, 1]")
        return self

"""Resources of one trial: CPUs from the spec, a GPU share given or derived from model size.

The derivation is a deliberately coarse memory estimate (weights, gradients and AdamW state of
the trainable blocks at the deepest searched depth, plus transformer activations at the batch
size), rounded up to eighths of a GPU so several small trials share one card. Give
``resources.gpu`` or ``--gpus-per-trial`` to override it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BYTES_PER_PARAM_FROZEN = 4  # fp32 weights
BYTES_PER_PARAM_TRAINED = 16  # weights, gradient, two AdamW moments
ACTIVATION_FACTOR = 24  # bytes per token x channel x block kept for the backward pass (bf16)
RUNTIME_OVERHEAD_GB = 1.5  # CUDA context, decoder, cuDNN workspaces
GPU_SHARE_STEP = 1 / 8


@dataclass(frozen=True)
class TrialFootprint:
    """What the estimate needs to know about a pair."""

    params: int
    num_blocks: int
    max_depth: int
    embed_dim: int | None
    input_size: int | None
    batch_size: int
    patch_size: int = 16
    token_grid: int | None = None
    token_sets: int = 1

    @classmethod
    def of(cls, encoder, max_depth: int, batch_size: int, input_size: int | None, dataset=None):
        """From an EncoderSpec on ``dataset``; without a published count, a ViT's 12 x width^2
        per block.

        Encoders whose token count is not (input / patch)^2 say so in their options:
        ``token_grid`` (tokens per side, e.g. RAMEN's resampled grid, set per dataset) and
        ``token_sets`` (one token grid per spectral group, e.g. SpectralGPT, THOR).
        """
        embed = encoder.embed_dim or 512
        options = encoder.options_for(dataset)
        return cls(
            params=encoder.published_params or 12 * embed * embed * max(encoder.num_blocks, 1),
            num_blocks=encoder.num_blocks,
            max_depth=max_depth,
            embed_dim=encoder.embed_dim,
            input_size=input_size,
            batch_size=batch_size,
            patch_size=encoder.patch_size or 16,
            token_grid=encoder.token_grid_for(dataset, input_size),
            token_sets=int(options.get("token_sets", 1)),
        )


def estimate_gpu_memory_gb(fp: TrialFootprint) -> float:
    trained_fraction = fp.max_depth / fp.num_blocks if fp.num_blocks else 1.0
    weights = fp.params * (
        BYTES_PER_PARAM_FROZEN * (1 - trained_fraction) + BYTES_PER_PARAM_TRAINED * trained_fraction
    )
    side = fp.token_grid or (fp.input_size or 256) / fp.patch_size
    tokens = side**2 * fp.token_sets
    channels = fp.embed_dim or 512
    blocks = max(fp.num_blocks, 1)
    activations = fp.batch_size * tokens * channels * blocks * ACTIVATION_FACTOR
    return (weights + activations) / 1e9 + RUNTIME_OVERHEAD_GB


def gpu_share(fp: TrialFootprint, gpu_memory_gb: float) -> float:
    """Fraction of one GPU, in eighths, never above one GPU."""
    need = estimate_gpu_memory_gb(fp) / gpu_memory_gb
    return min(1.0, max(GPU_SHARE_STEP, math.ceil(need / GPU_SHARE_STEP) * GPU_SHARE_STEP))


def detect_gpu_memory_gb() -> float | None:
    """Memory of the driver's first CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1e9

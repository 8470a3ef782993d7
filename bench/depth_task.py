"""A pretrained encoder for the depth benchmark: a small ViT, its synthetic pretext task, its
downstream dataset, and the trial runner that finetunes it through cryotune's own trainer.

No GFM checkpoint can be downloaded here, so the benchmark makes one. A synthetic multispectral
world (GSDD's 10 bands) holds ``MATERIALS`` materials, each a spectral signature; a scene is a
map of material regions (smooth random fields, regions a few patches wide) plus texture and
heavy per-pixel noise, so a pixel's material is only told apart from its neighbourhood.

- Pretext (pretraining, ``PRETRAIN_STEPS`` steps of fresh scenes): label every pixel's material
  at block ``MID_TAP`` and its *group* at the last block; the materials come in pairs whose
  signatures differ only slightly (``SIBLING_SHIFT`` in three bands), a pair is one group, and
  adversaries that learn to tell siblings apart from blocks ``TAPS`` are held at chance (a
  pretext invariant to a small spectral shift, as augmentation-invariant SSL is). So the early
  blocks denoise spectra and keep siblings apart, the top blocks merge them.
- Downstream (the benchmark's task, written as GSDD's real files): "debris" is one sibling of
  one group, the background everything else, its sibling included; ``TRAIN_TILES`` training
  tiles of ``TRAIN_SIZE`` px (``CROP`` px crops), ``VAL_TILES`` validation tiles of ``CROP`` px.
- The decoder reads the top blocks (``TAPS``), so frozen it sees siblings merged; finetuning the
  top blocks undoes the merge from the early blocks' features; finetuning everything also moves
  the early blocks, which the checkpoint's scale (``rescale``) makes as fragile to a high
  learning rate as a real GFM's are over a real finetuning's thousands of steps.

The intended shape (partial best, frozen clearly worse, full worse at a high learning rate) is
checked by a probe before every comparison (``bench.depth_probe``), not assumed.

The encoder is cryotune's own ``ViTEncoder`` over a timm ViT (12 blocks, as ViT-S/B, so the
default space's depth 0..12 is the one users meet; width 64, 4 px patches) with cryotune's
UPerNet at 32 channels instead of 512 (a CPU budget). ``run_trial`` is a
``$CRYOTUNE_TRIAL_RUNNER``: it calls ``cryotune.train.trainer.run_trial`` itself (data pipeline,
tile cache, finetuning depth, optimiser, validation, checkpoints) with this encoder's spec,
weights and decoder width passed as its ``custom`` encoder (``cryotune.models.segmenter``).
The pair keeps a registered pretrained 12-block ViT's name (``MODEL``) so the driver resolves
its depth range as for any such model; its records name this checkpoint as their weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import numpy as np

DATASET, MODEL = "gsdd", "ssl4eo_mae"
CHECKPOINT_ENV = "CRYOTUNE_BENCH_VIT"  # the pretrained encoder a trial loads
CACHE = Path(__file__).parent / "cache"  # gitignored

BANDS = 10
MATERIALS = 8  # 4 groups of 2 siblings
SIBLING_SHIFT = 0.45
SIGNATURE_STD = 0.6
NOISE = 0.9
TEXTURE = 0.3
REGION_PX = 10  # smooth-field cell: regions a few 4 px patches wide
DEBRIS = 0  # the downstream's positive class: material 0 (its sibling, 1, is background)
WORLD_SEED = 1234

EMBED, HEADS, BLOCKS, PATCH, MLP_RATIO = 64, 4, 12, 4, 2.0
TAPS = (8, 9, 10, 11)  # the decoder reads the top third only: the pretext's own blocks
MID_TAP = 5  # pretraining labels materials here, groups at the last block
MID_WEIGHT = 3.0
PRETRAIN_TAPS = (MID_TAP, *TAPS)  # TAPS: made blind to siblings by adversaries
ADVERSARY = 1.0
RESIDUAL_SCALE = 30.0  # see rescale(); 10 left full finetuning unharmed at lr 1e-3 (probe)
TRAIN_TILES = 16
TRAIN_SIZE, VAL_TILES = 48, 8
DECODER_CHANNELS = 32
CROP = 32
PRETRAIN_STEPS = 800


# ---------------------------------------------------------------------------------------------
# the synthetic world


def signatures() -> np.ndarray:
    """(MATERIALS, BANDS) spectral signatures in normalised units; siblings 2k, 2k+1 differ by
    ``SIBLING_SHIFT`` in three bands."""
    rng = np.random.default_rng(WORLD_SEED)
    out = np.zeros((MATERIALS, BANDS))
    for group in range(MATERIALS // 2):
        base = rng.normal(0.0, SIGNATURE_STD, BANDS)
        shift = np.zeros(BANDS)
        bands = rng.choice(BANDS, size=3, replace=False)
        shift[bands] = SIBLING_SHIFT * rng.choice([-1.0, 1.0], size=3)
        out[2 * group], out[2 * group + 1] = base - shift / 2, base + shift / 2
    return out


def _smooth(generator, batch: int, channels: int, size: int, cell: int):
    import torch
    import torch.nn.functional as F

    coarse = torch.randn(batch, channels, size // cell + 2, size // cell + 2, generator=generator)
    return F.interpolate(coarse, size=(size + 2 * cell, size + 2 * cell), mode="bilinear")[
        ..., cell : cell + size, cell : cell + size
    ]


def scenes(generator, batch: int, size: int, weights: tuple[float, ...] | None = None):
    """``batch`` scenes: (normalised bands (B, BANDS, size, size) float32, materials (B, size,
    size) int64). ``weights`` biases how often each material wins its regions."""
    import torch

    fields = _smooth(generator, batch, MATERIALS, size, REGION_PX)
    if weights is not None:
        fields = fields + torch.tensor(weights, dtype=fields.dtype)[None, :, None, None]
    materials = fields.argmax(dim=1)
    table = torch.tensor(signatures(), dtype=torch.float32)
    image = table[materials].permute(0, 3, 1, 2)
    image = image + TEXTURE * _smooth(generator, batch, BANDS, size, 8)
    image = image + NOISE * torch.randn(image.shape, generator=generator)
    return clip_as_files(image).float(), materials


def _band_stats():
    from cryotune.data.datasets import get_dataset

    modality = get_dataset(DATASET).modalities[0]
    return np.asarray(modality.mean, np.float32), np.asarray(modality.std, np.float32)


def clip_as_files(image):
    """What cryotune reads back of ``image`` once written as GSDD's [0, 1] float32 bands."""
    import torch

    mean, std = (torch.from_numpy(a)[None, :, None, None] for a in _band_stats())
    raw = (mean + std * image).clamp(0.0, 1.0)
    return (raw - mean) / std


DOWNSTREAM_WEIGHTS = (0.35, 0.35) + (0.0,) * (MATERIALS - 2)  # debris and its sibling common


def write_dataset(
    out: Path,
    train: int = TRAIN_TILES,
    val: int = VAL_TILES,
    size: int = TRAIN_SIZE,
    val_size: int = CROP,
    seed: int = 0,
) -> Path:
    """The downstream task in GSDD's real layout (``{split}/image/*.tif`` of 10 float32 bands in
    [0, 1], ``{split}/mask/*.tif``), written with the synthetic writers' GeoTIFF profile."""
    import torch

    from cryotune.data.datasets import get_dataset
    from cryotune.data.synth import _write

    spec = get_dataset(DATASET)
    mean, std = _band_stats()
    generator = torch.Generator().manual_seed(seed)
    index = 0
    for split, count in (("train", train), ("val", val), ("test", val)):
        tile = size if split == "train" else val_size
        image_dir, mask_dir = (
            spec.layout.image_folder(out, split),
            spec.layout.mask_folder(out, split),
        )
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        images, materials = scenes(generator, count, tile, DOWNSTREAM_WEIGHTS)
        for i in range(count):
            raw = (mean[:, None, None] + std[:, None, None] * images[i].numpy()).astype(np.float32)
            mask = (materials[i].numpy() == DEBRIS).astype(np.uint8)
            name = f"{DATASET}_{split}_{i:04d}.tif"
            _write(image_dir / name, raw, "GTiff", index)
            _write(mask_dir / name, mask[None], "GTiff", index)
            index += 1
    return out


# ---------------------------------------------------------------------------------------------
# the encoder


def bench_spec():
    """The registered ``MODEL`` spec with this benchmark's architecture: every dataset band,
    4 px patches at ``CROP`` px, width 64, 12 blocks tapped at ``TAPS``."""
    from cryotune.data.bands import ANY_BANDS
    from cryotune.models.encoders import get_encoder_spec

    return dataclasses.replace(
        get_encoder_spec(MODEL),
        title="bench ViT (12 x 64, 4 px patches), pretrained on the depth benchmark's pretext",
        builder=build_encoder,
        input_size=CROP,
        patch_size=PATCH,
        embed_dim=EMBED,
        num_blocks=BLOCKS,
        tapped_layers=TAPS,
        bands=ANY_BANDS,
        weights_file="bench-vit.pt",
        options=MappingProxyType({"num_heads": HEADS}),
    )


def build_encoder(spec, mapping, **_):
    """cryotune's ViTEncoder over a timm VisionTransformer of the benchmark's size."""
    from timm.models.vision_transformer import VisionTransformer

    from cryotune.models.encoders.base import ViTEncoder
    from cryotune.models.encoders.options import single_modality
    from cryotune.models.encoders.tokens import PatchTokens

    modality = single_modality(spec, mapping)
    in_chans = len(mapping.inputs[modality])
    vit = VisionTransformer(
        img_size=CROP,
        patch_size=PATCH,
        in_chans=in_chans,
        embed_dim=EMBED,
        depth=BLOCKS,
        num_heads=HEADS,
        mlp_ratio=MLP_RATIO,
        num_classes=0,
        global_pool="",
        dynamic_img_size=True,
    )
    grid = tuple(vit.patch_embed.grid_size)
    embed = PatchTokens(
        spec.key,
        modality,
        in_chans,
        PATCH,
        vit.patch_embed,
        grid,
        cls_token=vit.cls_token,
        pos_embed=vit.pos_embed,
        norm_pre=vit.norm_pre,
    )
    return ViTEncoder(
        spec.key,
        embed,
        list(vit.blocks),
        EMBED,
        spec.tapped_layers,
        (modality,),
        head_norm=vit.norm,
        norm_every_tap=True,  # the decoder reads unit-scale taps whatever the stream's scale
    )


def band_mapping():
    """GSDD's bands as the bench encoder takes them (all ten), for pretraining outside a trial."""
    from cryotune.data.bands import map_bands
    from cryotune.data.datasets import get_dataset

    spec = bench_spec()
    return map_bands(get_dataset(DATASET), spec.bands, spec.key)


# ---------------------------------------------------------------------------------------------
# pretraining


def pretrain(
    path: Path,
    steps: int = PRETRAIN_STEPS,
    batch: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the encoder to label materials at block ``MID_TAP`` and their groups at the last,
    and to leave the adversaries that learn to tell siblings apart from ``TAPS`` at chance (a
    pretext invariant to a small spectral shift, as augmentation-invariant SSL is); fresh scenes
    every step; AdamW, warm-up then cosine; saves the encoder's state to ``path`` (the heads are
    thrown away)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    mapping = band_mapping()
    (modality,) = mapping.inputs
    encoder = build_encoder(dataclasses.replace(bench_spec(), tapped_layers=PRETRAIN_TAPS), mapping)
    mid_head = torch.nn.Conv2d(EMBED, MATERIALS, 1)
    head = torch.nn.Conv2d(EMBED, MATERIALS // 2, 1)
    adversaries = torch.nn.ModuleList(
        torch.nn.Sequential(
            torch.nn.Conv2d(EMBED, EMBED, 1), torch.nn.GELU(), torch.nn.Conv2d(EMBED, 2, 1)
        )
        for _ in TAPS
    )
    heads = [mid_head, head, adversaries]
    params = [*encoder.parameters(), *(p for h in heads for p in h.parameters())]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        ),
    )

    def up(x):
        return F.interpolate(x, size=(CROP, CROP), mode="bilinear")

    started = time.perf_counter()
    accuracy = mid_accuracy = sibling_accuracy = float("nan")
    for step in range(1, steps + 1):
        images, materials = scenes(generator, batch, CROP)
        mid_map, *maps = encoder({modality: images})
        mid = up(mid_head(mid_map))
        logits = up(head(maps[-1]))
        adversaries.requires_grad_(False)  # the encoder's side: push every adversary to chance
        fooled = [a(m).log_softmax(1).mean(1) for a, m in zip(adversaries, maps)]
        adversaries.requires_grad_(True)
        siblings = [up(a(m.detach())) for a, m in zip(adversaries, maps)]
        loss = F.cross_entropy(logits, materials // 2) + MID_WEIGHT * F.cross_entropy(
            mid, materials
        )
        loss = loss - ADVERSARY * sum(f.mean() for f in fooled)
        loss = loss + sum(F.cross_entropy(s, materials % 2) for s in siblings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps:
            accuracy = float((logits.argmax(1) == materials // 2).float().mean())
            mid_accuracy = float((mid.argmax(1) == materials).float().mean())
            sibling_accuracy = float((siblings[0].argmax(1) == materials % 2).float().mean())
            log(
                f"pretrain step {step}/{steps}: loss {float(loss.detach()):.3f}, group accuracy "
                f"{accuracy:.3f}, material accuracy at block {MID_TAP} {mid_accuracy:.3f}, "
                f"sibling adversary at block {TAPS[0]} {sibling_accuracy:.3f}"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save(encoder.state_dict(), partial)
    partial.replace(path)
    return {
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seconds": round(time.perf_counter() - started, 1),
        "pretext_group_accuracy": round(accuracy, 4),
        "pretext_material_accuracy_mid": round(mid_accuracy, 4),
        "sibling_adversary_accuracy": round(sibling_accuracy, 4),
    }


_WRITERS = (
    "embed.cls_token",
    "embed.pos_embed",
    "embed.patch_embed.proj.",
    ".attn.proj.",
    ".mlp.fc2.",
)


def rescale(state: dict, scale: float) -> dict:
    """The same encoder with its residual stream ``scale`` times smaller: every writer to the
    stream (embeddings, attention and MLP outputs) divided, every reader behind a LayerNorm.

    The function is unchanged (every tap is LayerNormed too), but AdamW's
    steps, of about ``lr`` whatever a weight's size, now move the stream's writers ``scale``
    times further relative to their size: 25 steps here do to a pretrained block what a real
    finetuning's thousands do, so a learning rate too high for the pretrained blocks damages
    them, as it does a real GFM's."""
    return {k: v / scale if any(w in k for w in _WRITERS) else v for k, v in state.items()}


def checkpoint(
    steps: int = PRETRAIN_STEPS, log: Callable[[str], None] = print
) -> tuple[Path, dict]:
    """The cached pretrained encoder for ``steps`` (made on the first call, a few CPU minutes),
    stored rescaled by ``RESIDUAL_SCALE``."""
    import torch

    raw = CACHE / f"bench-vit-v4-{steps}.pt"
    path = raw.with_name(f"{raw.stem}-x{RESIDUAL_SCALE:g}.pt")
    info: dict = {"steps": steps, "residual_scale": RESIDUAL_SCALE, "cached": True}
    if not raw.exists():
        log(f"pretraining the bench ViT ({steps} steps) into {raw}")
        info = {**info, **pretrain(raw, steps, log=log), "cached": False}
    if not path.exists():
        state = torch.load(raw, map_location="cpu", weights_only=True)
        torch.save(rescale(state, RESIDUAL_SCALE), path)
    return path, info


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the trial runner


def run_trial(config, on_epoch=None, checkpoint_dir=None, resume=True, on_start=None):
    """``cryotune.train.trainer.run_trial`` on the bench encoder (``$CRYOTUNE_BENCH_VIT``)."""
    from cryotune.models.segmenter import CustomEncoder
    from cryotune.train.trainer import run_trial as train

    weights = os.environ.get(CHECKPOINT_ENV)
    if not weights:
        raise RuntimeError(f"${CHECKPOINT_ENV} names no pretrained bench encoder")
    return train(
        config,
        on_epoch=on_epoch,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        on_start=on_start,
        custom=CustomEncoder(bench_spec(), Path(weights), DECODER_CHANNELS),
    )

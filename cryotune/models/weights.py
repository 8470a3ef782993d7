"""Checkpoints: where they are, how each family's official key names map onto the encoder.

Lookup: ``--weights DIR``, else ``$CRYOTUNE_WEIGHTS``, else the
per-user ``$XDG_CACHE_HOME/cryotune/weights``; a file is found as ``DIR/<file>`` or
``DIR/<model key>/<file>``. Loading is strict: after the family's layout has unwrapped,
renamed and dropped the checkpoint's non-encoder parts (decoders, heads, projectors, other
modalities), every encoder key must be present with the encoder's shape, and nothing else
may be left; otherwise WeightsError lists what does not fit.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from cryotune.errors import UsageError, WeightsError
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.thor import thor_encoder_state

WEIGHTS_ENV = "CRYOTUNE_WEIGHTS"
RANDOM_WEIGHTS = "random"
LISTED_KEYS = 20
SAFE_GLOBALS = (argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath)

StateDict = dict[str, Tensor]


def default_weights_dir() -> Path:
    """The per-user checkpoint folder: ``$XDG_CACHE_HOME/cryotune/weights`` (``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cryotune" / "weights"


def weights_dir(config_weights: str | None) -> Path | None:
    """The checkpoint folder a run uses; None for ``"random"`` (no checkpoint at all)."""
    if config_weights == RANDOM_WEIGHTS:
        return None
    if config_weights:
        folder = Path(config_weights).expanduser()
        if not folder.is_dir():
            raise UsageError(
                f"weights folder '{config_weights}' does not exist; pass a folder holding the "
                f"checkpoints, or '{RANDOM_WEIGHTS}' for random initialisation"
            )
        return folder
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else default_weights_dir()


def weights_file(spec: EncoderSpec, variant: str | None = None) -> str | None:
    """The checkpoint file name: the spec's, or its variant's (``"sar"`` for SSL4EO-MAE)."""
    if variant is None:
        return spec.weights_file
    return str(spec.option("variant_weights", {})[variant])


def candidate_paths(spec: EncoderSpec, folder: Path, variant: str | None = None) -> list[Path]:
    name = weights_file(spec, variant)
    return [folder / name, folder / spec.key / name] if name else []


def find_weights(
    spec: EncoderSpec, weights_dir: Path | None, variant: str | None = None
) -> Path | None:
    """The first existing checkpoint file for ``spec`` in ``weights_dir``, or None."""
    if weights_dir is None:
        return None
    return next((p for p in candidate_paths(spec, weights_dir, variant) if p.is_file()), None)


def require_weights(
    spec: EncoderSpec, config_weights: str | None, variant: str | None = None
) -> Path:
    """The checkpoint to load; WeightsError naming the file, folders searched and source."""
    folder = weights_dir(config_weights)
    if folder is None:
        raise UsageError(f"--weights {RANDOM_WEIGHTS} asks for no checkpoint for '{spec.key}'")
    found = find_weights(spec, folder, variant)
    if found is not None:
        return found
    from cryotune.weights.needs import fetch_command
    from cryotune.weights.sources import source_for

    source = source_for(spec.key, variant)
    searched = ", ".join(str(p.parent) for p in candidate_paths(spec, folder, variant))
    raise WeightsError(
        f"no weights file '{weights_file(spec, variant)}' for model '{spec.key}': searched "
        f"{searched}; fetch it with `{fetch_command([source], config_weights)}` (from "
        f"{source.origin.describe()}), or pass --weights DIR / set ${WEIGHTS_ENV} to a folder "
        f"holding it, or --weights {RANDOM_WEIGHTS} for random initialisation"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> object:
    """``torch.load`` restricted to tensors and plain containers (plus argparse Namespaces,
    which training scripts pickle beside the weights): a checkpoint never runs code."""
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next(
            (line.strip() for line in str(exc).splitlines() if "WeightsUnpickler" in line), ""
        )
        unsafe = re.search(r"GLOBAL (\S+)", detail)
        if unsafe:
            raise WeightsError(
                f"checkpoint {path} pickles {unsafe.group(1)} beside its tensors and cryotune "
                "loads tensors only; re-save its state dict with torch.save and retry"
            ) from None
        raise WeightsError(
            f"cannot read checkpoint {path}: not a PyTorch checkpoint ({detail or exc})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read checkpoint {path}: {reason}") from None


@dataclass(frozen=True)
class CheckpointLayout:
    """How one family's official checkpoint names map onto the encoder's state dict.

    Steps, in order: take the first of ``containers`` present (else the file is the state
    dict); if ``nested``, join the keys of per-module state dicts as ``<module>.<key>``
    (CROMA's file holds one per encoder); strip ``strip`` prefixes; ``convert`` the whole
    dict; drop keys matching ``drop`` (non-encoder parts); apply ``rename`` substitutions;
    drop keys under an ``optional`` module path the encoder did not build (embeddings of
    modalities it was not fed).
    """

    containers: tuple[str, ...] = ()
    strip: tuple[str, ...] = ()
    convert: Callable[[StateDict, nn.Module], StateDict] | None = None
    drop: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    optional: tuple[str, ...] = ()
    nested: bool = False


TIMM_NAMES = (
    (r"^patch_embed\.", "embed.patch_embed."),
    (r"^cls_token$", "embed.cls_token"),
    (r"^pos_embed$", "embed.pos_embed"),
    (r"^norm_pre\.", "embed.norm_pre."),
    (r"^rel_pos_bias\.", "embed.rel_pos_bias."),
    (r"^blocks\.", "layers."),
)
HEADS = (r"^head\.", r"^fc_norm\.", r"^norm\.")
MAE_DECODER = (r"^decoder", r"^mask_token")


# OpenAI / open_clip image-tower names -> timm's, as timm's ``_convert_openai_clip`` renames them
# (huggingface/pytorch-image-models, timm/models/vision_transformer.py, Apache License 2.0,
# Copyright 2020 Ross Wightman): vendored because timm keeps that function private.
CLIP_SWAPS = (
    ("conv1", "patch_embed.proj"),
    ("positional_embedding", "pos_embed"),
    ("transformer.resblocks.", "blocks."),
    ("ln_pre", "norm_pre"),
    ("ln_post", "norm"),
    ("ln_", "norm"),
    ("in_proj_", "qkv."),
    ("out_proj", "proj"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
)


def openai_clip_to_timm(state: StateDict, encoder: nn.Module, prefix: str = "visual.") -> StateDict:
    """OpenAI / open_clip names (``visual.*``) -> timm's; the output projection becomes a head
    (dropped later with every head)."""
    out: StateDict = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key.replace(prefix, "")
        for old, new in CLIP_SWAPS:
            key = key.replace(old, new)
        if key == "proj":
            key, value = "head.weight", value.transpose(0, 1)
            out["head.bias"] = torch.zeros(value.shape[0])
        elif key == "class_embedding":
            value = value.unsqueeze(0).unsqueeze(1)
            key = "cls_token"
        elif key == "pos_embed":
            value = value.unsqueeze(0)
        out[key] = value
    return out


def first_frame_position(state: StateDict, encoder: nn.Module) -> StateDict:
    """Prithvi-100M was pretrained on 3 frames: keep the class slot and frame 0 of its 3-D
    sin-cos code, which is exactly the single-frame code."""
    expected = encoder.state_dict()["embed.pos_embed"].shape[1]
    code = state.get("pos_embed")
    if code is not None and code.shape[1] > expected:
        state = {**state, "pos_embed": code[:, :expected]}
    return state


LAYOUTS: dict[str, CheckpointLayout] = {
    "mocov3": CheckpointLayout(
        containers=("state_dict",),
        strip=("module.base_encoder.",),
        drop=(r"^module\.(momentum_encoder|predictor)\.", *HEADS),
        rename=TIMM_NAMES,
    ),
    "dino": CheckpointLayout(
        containers=("teacher", "student"),
        strip=("module.", "backbone."),
        drop=HEADS,
        rename=TIMM_NAMES,
    ),
    "mae": CheckpointLayout(containers=("model",), drop=(*MAE_DECODER, *HEADS), rename=TIMM_NAMES),
    "data2vec": CheckpointLayout(
        containers=("model",),
        drop=(
            r"^mask_token$",
            r"relative_position_index$",
            r"^lm_head\.",
            r"^final_proj\.",
            *HEADS,
        ),
        rename=TIMM_NAMES,
    ),
    "clip": CheckpointLayout(
        containers=("state_dict",),
        strip=("module.",),
        convert=openai_clip_to_timm,
        drop=HEADS,
        rename=TIMM_NAMES,
    ),
    "prithvi": CheckpointLayout(
        containers=("model", "state_dict"),
        strip=("encoder.",),
        convert=first_frame_position,
        drop=(*MAE_DECODER, *HEADS),
        rename=TIMM_NAMES,
    ),
    "dofa": CheckpointLayout(containers=("model",), drop=(*MAE_DECODER, *HEADS), rename=TIMM_NAMES),
    "scalemae": CheckpointLayout(
        containers=("model",),
        drop=(
            *MAE_DECODER,
            r"^pos_embed$",
            r"^pos_emb_projection\.",
            r"^fpn\.",
            r"^fcn(_high|_low)?\.",
            *HEADS,
        ),
        rename=TIMM_NAMES,
    ),
    "terramind": CheckpointLayout(
        drop=(r"^decoder", r"(^encoder_norm|\.norm[12])\.bias$"),
        rename=(
            (r"^encoder\.(\d+)\.", r"layers.\1."),
            (r"^encoder_norm\.", "head_norm."),
            (r"^encoder_embeddings\.", "embed.encoder_embeddings."),
            (r"\.mlp\.fc1\.", ".mlp.fc1_g."),
            (r"\.mlp\.fc3\.", ".mlp.fc1_x."),
        ),
        optional=(r"^(embed\.encoder_embeddings\.[^.]+)\.",),
    ),
    # CROMA: {"s1_encoder": ..., "s2_encoder": ..., "joint_encoder": ..., "s1_GAP_FFN": ...};
    # alone, the optical encoder builds only the 12 of its 24 layers that feed the taps
    "croma": CheckpointLayout(
        nested=True,
        drop=(r"^s[12]_GAP_FFN\.",),
        optional=(
            r"^(s1_encoder|s2_encoder|joint_encoder)\.",
            r"^(s2_encoder\.transformer\.layers\.\d+)\.",
        ),
    ),
    "spectralgpt": CheckpointLayout(
        containers=("model",),
        drop=(*MAE_DECODER, *HEADS),
        rename=(
            (r"^(patch_embed\.|pos_embed_spatial$|pos_embed_temporal$)", r"embed.\1"),
            (r"^blocks\.", "layers."),
        ),
    ),
    # RAMEN's Lightning checkpoint: the encoder's own names under "state_dict"; the
    # multi-temporal L-TAE and the band projectors of kinds not fed are not part of the build
    "ramen": CheckpointLayout(
        containers=("state_dict",),
        strip=("model.encoder.", "encoder."),
        drop=(r"^ltae\.", r"^model\."),
        rename=(
            (r"^(cls_token$|(spectral|radar|dem)_projector\.|resampler\.|in_norm\.)", r"embed.\1"),
            (r"^blocks\.", "layers."),
            (r"^norm\.", "head_norm."),
        ),
        optional=(r"^(embed\.(?:spectral|radar|dem)_projector)\.",),
    ),
    # SatlasPretrain: backbone.backbone.* is torchvision's swin_v2_b; its final norm and head,
    # the FPN and upsampler (intermediates.*) and task heads are not part of the encoder
    "satlas": CheckpointLayout(
        strip=("backbone.backbone.",),
        drop=(
            r"^(norm|heads?|intermediates)\.",
            r"\.(relative_coords_table|relative_position_index)$",
        ),
    ),
    # GFM (SimMIM): {"model": encoder.*, teacher.*, decoder.*, projector.*}
    "gfm": CheckpointLayout(
        containers=("model",),
        strip=("encoder.",),
        drop=(
            r"^(teacher|decoder|projector)\.",
            r"^(mask_token|norm\.weight|norm\.bias)$",
            r"\.(relative_position_index|attn_mask)$",
        ),
    ),
    # THOR: encoder.* beside the MAE decoder and task heads; projections of bands not fed
    # (Sentinel-3, HH/HV...) are dropped, fixed sin-cos tables and ALiBi slopes recomputed
    "thor": CheckpointLayout(
        containers=("state_dict",),
        convert=thor_encoder_state,
        drop=(
            r"^(band_embed|prod_embed|pos_embed|ref_pos_embed|pos_embed_poolers)\.",
            r"^(encoder_slopes|fuzzy_grid)$",
        ),
        rename=(
            (r"^ind_patch_embed\.", "embed."),
            (r"^blocks\.", "layers."),
            (r"^norm\.", "head_norm."),
        ),
        optional=(r"^(embed\.patch_embed\.[^.]+)\.",),
    ),
}


def _flatten(state: Mapping) -> dict:
    flat = {}
    for name, part in state.items():
        if isinstance(part, Mapping):
            flat |= {f"{name}.{key}": value for key, value in part.items()}
        else:
            flat[name] = part
    return flat


def _unwrap(checkpoint: object, layout: CheckpointLayout, path: Path) -> StateDict:
    state = checkpoint
    if isinstance(state, Mapping):
        state = next(
            (state[c] for c in layout.containers if isinstance(state.get(c), Mapping)), state
        )
    if layout.nested and isinstance(state, Mapping):
        state = _flatten(state)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        tried = ", ".join(repr(c) for c in layout.containers) or "none"
        raise WeightsError(
            f"checkpoint {path} is not a state dict of tensors (containers tried: {tried})"
        )
    return dict(state)


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def encoder_state(
    checkpoint: object, spec: EncoderSpec, encoder: nn.Module, path: Path
) -> StateDict:
    """The checkpoint's encoder part under the encoder's own key names."""
    layout = LAYOUTS.get(spec.family)
    if layout is None:
        raise WeightsError(
            f"model '{spec.key}' (family '{spec.family}') has no checkpoint layout; known: "
            f"{', '.join(sorted(LAYOUTS))}"
        )
    state = {_strip(k, layout.strip): v for k, v in _unwrap(checkpoint, layout, path).items()}
    if layout.convert is not None:
        state = layout.convert(state, encoder)
    state = {k: v for k, v in state.items() if not any(re.search(d, k) for d in layout.drop)}
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in layout.rename:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    modules = dict(encoder.named_modules())
    return {
        k: v
        for k, v in renamed.items()
        if all((m := re.match(o, k)) is None or m.group(1) in modules for o in layout.optional)
    }


def release_encoder_part(checkpoint: object, spec: EncoderSpec, path: Path) -> object:
    """The release with only what the family's layout keeps for an encoder (any modality), under
    the release's own names and container: a smaller checkpoint the same layout reads to the
    same encoder state. Layouts that merge or convert keys are kept whole (WeightsError)."""
    layout = LAYOUTS.get(spec.family)
    if layout is None or layout.nested or layout.convert is not None:
        raise WeightsError(
            f"model '{spec.key}' (family '{spec.family}'): its checkpoint layout is not a plain "
            "key filter, so cryotune keeps the release whole"
        )
    container = None
    if isinstance(checkpoint, Mapping):
        container = next(
            (c for c in layout.containers if isinstance(checkpoint.get(c), Mapping)), None
        )
    state = _unwrap(checkpoint, layout, path)
    kept = {
        k: v
        for k, v in state.items()
        if not any(re.search(d, _strip(k, layout.strip)) for d in layout.drop)
    }
    return {container: kept} if container else kept


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    more = len(keys) - LISTED_KEYS
    return f"{shown} and {more} more" if more > 0 else shown


def load_encoder_weights(encoder: nn.Module, spec: EncoderSpec, path: Path) -> str:
    """Loads the official checkpoint at ``path`` into ``encoder``; returns the file's sha256.

    WeightsError lists missing encoder keys, unexpected keys and shape mismatches instead of
    half-loading.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} for model '{spec.key}' does not exist")
    state = encoder_state(read_checkpoint(path), spec, encoder, path)
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs encoder {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    problems = [
        f"{label} ({len(keys)}): {_listed(keys)}"
        for label, keys in (
            ("missing encoder keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    if problems:
        raise WeightsError(
            f"checkpoint {path} does not fit model '{spec.key}' (family '{spec.family}', "
            f"modalities {list(getattr(encoder, 'modalities', []))}): " + "; ".join(problems)
        )
    encoder.load_state_dict(state, strict=True)
    return file_sha256(path)

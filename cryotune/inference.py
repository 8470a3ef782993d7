"""A best trial's checkpoint as a ready ``torch.nn.Module``, for inference in a notebook.

The record of a finished pair names its best trial's whole ``TrialConfig`` and checkpoint
(``trials/TRIAL_ID/best.pt``: the weights of its best validated epoch). The segmenter is built
from that config as the trial built it, without loading pretrained encoder weights (the
checkpoint holds every weight), the checkpoint is loaded strictly and the model is put in eval
mode. Its input is what the trainer feeds: a dict of the encoder's modalities
(``model.encoder.modalities``), each a float32 ``(B, C, H, W)`` tensor normalised as the tile
cache stores it; its output the class logits ``(B, classes, H, W)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cryotune.errors import CryotuneError, WeightsError

if TYPE_CHECKING:
    import torch

    from cryotune.documents.record import PairRecord
    from cryotune.models.segmenter import Segmenter


def checkpoint_path(record: PairRecord) -> Path:
    """The best trial's ``best.pt``: in the sweep folder the record was read from (which may
    have moved or been copied since), else (a record read from MLflow) where the record says;
    CryotuneError saying why it is gone and how to get it back."""
    from cryotune.train.trainer import BEST

    trial_id = record.ids.tune_trial_id
    if record.record_file is not None and trial_id is not None:
        path = Path(record.record_file).parents[1] / "trials" / trial_id / BEST
    elif record.checkpoint is not None:
        path = Path(record.checkpoint)
    else:
        path = None
    if path is not None and path.is_file():
        return path
    where = str(path) if path is not None else "no file: the record names none"
    raise CryotuneError(
        f"{record.key}: the best trial's checkpoint is gone ({where}): a sweep keeps only the "
        "best trial's best.pt (keep_checkpoints: best), and this one was deleted or is on "
        f"another machine; train the config again with: {record.repeat_command}"
    )


def load_record_model(record: PairRecord, device: str | torch.device = "auto") -> Segmenter:
    """The model of ``record``'s best trial with its best epoch's weights, in eval mode on
    ``device`` (auto: CUDA when present)."""
    import torch

    from cryotune.data.datasets import get_dataset
    from cryotune.models.segmenter import build_segmenter
    from cryotune.models.weights import RANDOM_WEIGHTS
    from cryotune.train.trainer import select_device

    if not record.complete:
        raise CryotuneError(f"{record.key}: the pair has no complete trial, so no best model")
    path = checkpoint_path(record)
    config = record.config.model_copy(update={"weights": RANDOM_WEIGHTS})
    built = build_segmenter(config, get_dataset(record.dataset))
    saved = torch.load(path, map_location="cpu", weights_only=True)
    try:
        built.model.load_state_dict(saved["model"])
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(
            f"{path}: does not fit the {record.model} model its record describes ({exc})"
        ) from None
    target = select_device(device) if isinstance(device, str) else device
    return built.model.to(target).eval()


def load_best_model(
    dataset: str,
    model: str | None = None,
    *,
    workspace: str | Path | None = None,
    tracking_uri: str | None = None,
    device: str | torch.device = "auto",
) -> Segmenter:
    """The best trial of ``model`` on ``dataset`` (of the best model, without one) over every
    sweep, as a ``torch.nn.Module`` in eval mode with its best epoch's weights."""
    from cryotune.client import best

    if model is not None:
        record = best(dataset, model, workspace=workspace, tracking_uri=tracking_uri)
    else:
        record = best(dataset, workspace=workspace, tracking_uri=tracking_uri)[0]
    return load_record_model(record, device)

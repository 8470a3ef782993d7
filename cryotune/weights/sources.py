"""The official source of every checkpoint cryotune loads, one small declarative entry per file.

URLs are those Cryo-Bench's PANGAEA configs download from (``configs/encoder/*.yaml``,
``download_url``), or the model's own release where those configs name none. A sha256 is
written here only where the source publishes one; none of these sources publishes a sha256 as a
fixed value, so every ``sha256`` is None and ``sha256_note`` says where the check comes from
instead: the Hub publishes each file's sha256 (its LFS object id) and ``fetch`` reads and checks
it; the other sources' files are recorded at their first fetch (``cryotune.weights.ledger``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryotune.errors import UnknownNameError, UsageError

HUB_SHA = "published by the Hub per file (its LFS sha256); read and checked at every fetch"
GITHUB_SHA = "not read from the release; recorded at the first fetch"
ZENODO_SHA = "Zenodo publishes an md5, not a sha256; recorded at the first fetch"
DRIVE_SHA = "Google Drive publishes none; recorded at the first fetch"
MANUAL_SHA = "none published; a file you place is checked against nothing"


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face model repository, fetched through ``huggingface_hub``."""

    repo: str
    filename: str
    revision: str = "main"
    kind = "hf"

    @property
    def page(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    def describe(self) -> str:
        return f"HF {self.repo} {self.filename}"


@dataclass(frozen=True)
class WebFile:
    """A file at a plain HTTPS URL (a GitHub release asset, a Zenodo record, Google Drive);
    ``page`` is where a person downloads it by hand when the URL answers with a web page."""

    url: str
    page: str
    kind = "https"

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class ManualFile:
    """A file its authors publish behind a link no program can follow (OneDrive, a form)."""

    page: str
    how: str
    kind = "manual"

    def describe(self) -> str:
        return f"manual download: {self.page}"


@dataclass(frozen=True)
class WeightsSource:
    """One checkpoint file: the model (and variant) that loads it, the name cryotune expects,
    where it officially comes from, its published sha256 (None unless the source publishes one,
    see the module docstring) and the conversion, if any, from the release to what is stored.
    ``part`` names one file of a model that has several (``ssl4eo_mae:optical``, ``:sar``)."""

    model: str
    file: str
    origin: HubFile | WebFile | ManualFile
    sha256_note: str
    sha256: str | None = None
    variant: str | None = None
    part: str | None = None
    convert: str | None = None

    @property
    def label(self) -> str:
        """``model``, or ``model:part`` for one of a model's several files."""
        return f"{self.model}:{self.part}" if self.part else self.model

    def to_dict(self) -> dict:
        origin = self.origin
        return {
            "model": self.model,
            "variant": self.variant,
            "part": self.part,
            "file": self.file,
            "kind": origin.kind,
            "repo": getattr(origin, "repo", None),
            "repo_file": getattr(origin, "filename", None),
            "url": getattr(origin, "url", None),
            "page": origin.page,
            "source": origin.describe(),
            "official_sha256": self.sha256,
            "sha256_note": self.sha256_note,
            "convert": self.convert,
        }


def _hub(model: str, repo: str, file: str, **kwargs: object) -> WeightsSource:
    return WeightsSource(model, file, HubFile(repo, file), HUB_SHA, **kwargs)


def _drive(model: str, file_id: str, file: str, part: str | None = None) -> WeightsSource:
    """SSL4EO-S12's 13-band ViT-S/16 files: the Drive links of the authors' README, as
    PANGAEA's ``ssl4eo_*.yaml`` download them."""
    url = f"https://drive.google.com/uc?id={file_id}&export=download&confirm=yes"
    page = f"https://drive.google.com/file/d/{file_id}/view"
    return WeightsSource(model, file, WebFile(url, page), DRIVE_SHA, part=part)


SOURCES: tuple[WeightsSource, ...] = (
    _hub("croma", "antofuller/CROMA", "CROMA_large.pt"),
    _hub("dofa", "XShadow/DOFA", "DOFA_ViT_base_e100.pth"),
    WeightsSource(
        "gfm_swin",
        "gfm.pth",
        ManualFile(
            "https://github.com/mmendiet/GFM",
            "its README links the checkpoint; PANGAEA's gfmswin.yaml has no download URL",
        ),
        MANUAL_SHA,
    ),
    _hub("prithvi", "ibm-nasa-geospatial/Prithvi-100M", "Prithvi_100M.pt"),
    _hub("remoteclip", "chendelong/RemoteCLIP", "RemoteCLIP-ViT-B-32.pt"),
    # satlaspretrain_models' own URL for Sentinel2_SwinB_SI_MS (PANGAEA's satlasnet_encoder.py)
    _hub("satlas", "allenai/satlas-pretrain", "sentinel2_swinb_si_ms.pth"),
    WeightsSource(
        "scalemae",
        "scalemae-vitlarge-800.pth",
        WebFile(
            "https://github.com/bair-climate-initiative/scale-mae/releases/download/base-800/"
            "scalemae-vitlarge-800.pth",
            "https://github.com/bair-climate-initiative/scale-mae/releases/tag/base-800",
        ),
        GITHUB_SHA,
    ),
    WeightsSource(
        "spectralgpt",
        "SpectralGPT+.pth",
        WebFile(
            "https://zenodo.org/records/8412455/files/SpectralGPT+.pth",
            "https://zenodo.org/records/8412455",
        ),
        ZENODO_SHA,
    ),
    _drive("ssl4eo_moco", "1LREGuI6w7Gq6Xm0jFQdxxtp8QkmLvJWk", "B13_vits16_moco_0099.pth"),
    _drive("ssl4eo_dino", "1CseO5vvMReGlAulm5o4ZgbjUgj8VlAH7", "B13_vits16_dino_0099_ckpt.pth"),
    _drive(
        "ssl4eo_mae", "1QTBKl1asxgQCNd6bO2azXZNPfoQ3Sazv", "B13_vits16_mae_0099_ckpt.pth", "optical"
    ),
    _hub("ssl4eo_mae", "wangyi111/SSL4EO-S12", "B2_vits16_mae_ep99.pth", variant="sar", part="sar"),
    _drive(
        "ssl4eo_data2vec", "1VbIGBwzZYndv4v1vx9FiD6IP-YwsHEns", "B13_vits16_data2vec_0099_ckpt.pth"
    ),
    # the release holds TerraMind's generative decoder beside the encoder: only the encoder is
    # kept, so a trial reads about a third of the file
    _hub(
        "terramind",
        "ibm-esa-geospatial/TerraMind-1.0-large",
        "TerraMind_v1_large.pt",
        convert="encoder_only",
    ),
    _hub("ramen", "nicolashoudre/RAMEN", "ramen_base_99.ckpt"),
    _hub("thor", "FM4CS/THOR-1.0-large", "thor_v1_vit_large.pt"),
    _hub("prithvi_eo2", "ibm-nasa-geospatial/Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt"),
)


def source_for(model: str, variant: str | None = None) -> WeightsSource:
    """The source of the file ``model`` loads for ``variant`` (SSL4EO-MAE's ``"sar"``)."""
    for source in SOURCES:
        if source.model == model and source.variant == variant:
            return source
    raise UnknownNameError("model with a checkpoint", model, {s.model for s in SOURCES})


def sources_of(names: list[str]) -> list[WeightsSource]:
    """The files named: ``model`` names all of its files, ``model:part`` one of them."""
    from cryotune.models.encoders import ENCODERS

    chosen: list[WeightsSource] = []
    for name in names:
        model, _, part = name.partition(":")
        spec = ENCODERS.get(model)
        if spec is not None and not spec.pretrained:
            raise UsageError(f"model '{model}' is trained from scratch: it has no checkpoint")
        files = [s for s in SOURCES if s.model == model]
        if not files:
            raise UnknownNameError("model with a checkpoint", model, {s.model for s in SOURCES})
        if part:
            files = [s for s in files if s.part == part]
            if not files:
                valid = ", ".join(s.label for s in SOURCES if s.model == model and s.part)
                raise UsageError(f"model '{model}' has no checkpoint '{part}'; valid: {valid}")
        chosen.extend(files)
    return list(dict.fromkeys(chosen))


def shortest_names(sources: list[WeightsSource]) -> list[str]:
    """Names that select exactly ``sources``: a model alone where all its files are wanted."""
    names = []
    for source in sources:
        whole = all(s in sources for s in SOURCES if s.model == source.model)
        names.append(source.model if whole else source.label)
    return list(dict.fromkeys(names))

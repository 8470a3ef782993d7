"""Hugging Face sources, through ``huggingface_hub`` so its settings hold: the cache (``HF_HOME``,
``HF_HUB_CACHE``), the token (``hf auth login``, ``HF_TOKEN``), the endpoint (``HF_ENDPOINT``), its
timeouts and its own resuming of a transfer cut off mid-way.

The Hub publishes each LFS file's sha256 as its ETag; ``probe`` returns it so the fetched file is
checked against the source's own value.
"""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from cryotune.weights.sources import HubFile
from cryotune.weights.web import FetchError, Remote

SHA256 = re.compile(r"[0-9a-f]{64}")


def endpoint_of(endpoint: str | None) -> str:
    return (endpoint or constants.ENDPOINT).rstrip("/")


def _explain(exc: Exception, origin: HubFile, endpoint: str | None) -> FetchError:
    """The user's next step for a Hub error; the order matters (GatedRepoError is a
    RepositoryNotFoundError, every HTTP error an HfHubHTTPError)."""
    page = f"{endpoint_of(endpoint)}/{origin.repo}"
    if isinstance(exc, GatedRepoError):
        return FetchError(
            f"{origin.repo} is gated: accept its terms at {page} (logged in), then log in here "
            "with `hf auth login` or set HF_TOKEN"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return FetchError(
            f"repository {page} not found (a private one needs `hf auth login` or HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return FetchError(f"revision '{origin.revision}' not found in {page}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return FetchError(
            f"not found: {origin.filename} is not in {page} at '{origin.revision}' (HTTP 404)"
        )
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "error"
        return FetchError(f"HTTP {status} from {page}: {str(exc).splitlines()[0]}")
    if isinstance(exc, OfflineModeIsEnabled):
        return FetchError("HF_HUB_OFFLINE is set: the Hub is not asked")
    if isinstance(exc, LocalEntryNotFoundError):
        cause = exc.__cause__ or exc
        return FetchError(f"cannot reach {endpoint_of(endpoint)}: {_first_line(cause)}")
    return FetchError(f"cannot reach {endpoint_of(endpoint)}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def probe(origin: HubFile, endpoint: str | None, timeout: float) -> Remote:
    """Size and sha256 as the Hub publishes them (the sha256 only for LFS files)."""
    url = hf_hub_url(origin.repo, origin.filename, revision=origin.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except Exception as exc:  # the Hub's HTTP client raises its own transport errors
        raise _explain(exc, origin, endpoint) from None
    sha = meta.etag if meta.etag and SHA256.fullmatch(meta.etag) else None
    return Remote(url, meta.size, sha)


def download(
    origin: HubFile, endpoint: str | None, cache_dir: str | None = None, force: bool = False
) -> Path:
    """The file in the Hub's cache (``cache_dir``, else the library's own): downloaded unless
    already there, or always with ``force``."""
    try:
        return Path(
            hf_hub_download(
                origin.repo,
                origin.filename,
                revision=origin.revision,
                endpoint=endpoint,
                cache_dir=cache_dir,
                force_download=force,
            )
        )
    except Exception as exc:  # as in probe: one file's failure is reported, the others go on
        raise _explain(exc, origin, endpoint) from None

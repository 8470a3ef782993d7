"""Plain HTTPS downloads (GitHub releases, Zenodo, Google Drive): resumable, with a progress bar.

Bytes go to ``DEST.part``; what the server said about them (URL, ETag or Last-Modified) to
``DEST.part.json``, so a later run asks only for the rest (``Range``, guarded by ``If-Range``)
and starts over when the file changed. The caller checks the finished ``.part`` and moves it
under its final name. ``$CRYOTUNE_WEIGHTS_MIRROR`` (a base URL) serves every HTTPS source from
``MIRROR/HOST/PATH`` instead, as ``HF_ENDPOINT`` does for the Hub.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

from cryotune.errors import WeightsError

MIRROR_ENV = "CRYOTUNE_WEIGHTS_MIRROR"
ATTEMPTS = 5


class FetchError(WeightsError):
    """One file that could not be fetched; the others go on."""


@dataclass(frozen=True)
class Remote:
    """What a source says about a file before it is downloaded: where, how big and, where the
    source publishes it, its sha256."""

    url: str
    size: int | None
    sha256: str | None = None


def mirrored(url: str, mirror: str | None = None) -> str:
    """``url`` as the mirror (``mirror`` or ``$CRYOTUNE_WEIGHTS_MIRROR``) serves it, if any."""
    base = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if not base:
        return url
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{base.rstrip('/')}/{parts.netloc}{parts.path}{query}"


def _client(timeout: float) -> httpx.Client:
    """Bytes as sent (``identity``): ranges count the file's own bytes."""
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout),
        headers={"Accept-Encoding": "identity"},
    )


def _refusal(response: httpx.Response, page: str) -> FetchError:
    url, code = response.request.url, response.status_code
    if code == 404:
        return FetchError(f"not found at {url} (HTTP 404)")
    if code in (401, 403):
        return FetchError(
            f"refused by {url} (HTTP {code}): it needs a login or a licence accepted; visit {page}"
        )
    return FetchError(f"HTTP {code} from {url}")


def _web_page(response: httpx.Response, page: str, dest: Path) -> FetchError | None:
    if not response.headers.get("content-type", "").startswith("text/html"):
        return None
    return FetchError(
        f"{response.request.url} answered with a web page, not the file (a download "
        f"confirmation, quota or sign-in page): open {page} in a browser, download the file "
        f"and save it as {dest}"
    )


def _transport(exc: httpx.HTTPError, url: str, timeout: float) -> FetchError:
    host = urlsplit(url).netloc
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(f"no answer from {host} within {timeout:g} s (see --timeout)")
    return FetchError(f"cannot download from {host}: {exc or type(exc).__name__}")


def probe(url: str, page: str, dest: Path, timeout: float) -> Remote:
    """The file's size, from a GET of its first byte (signed download URLs often refuse HEAD);
    None where the server does not say."""
    try:
        with (
            _client(timeout) as client,
            client.stream("GET", url, headers={"Range": "bytes=0-0"}) as response,
        ):
            if response.status_code >= 400:
                raise _refusal(response, page)
            page_error = _web_page(response, page, dest)
            if page_error is not None:
                raise page_error
            headers = response.headers
    except httpx.HTTPError as exc:
        raise _transport(exc, url, timeout) from None
    total = headers.get("content-range", "").rpartition("/")[2]
    if response.status_code != 206:
        total = headers.get("content-length", "")
    return Remote(url, int(total) if total.isdigit() else None)


def _validator(response: httpx.Response) -> str | None:
    etag = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("last-modified")


class _Part:
    """``DEST.part`` and the note of what it holds."""

    def __init__(self, dest: Path):
        self.path = dest.with_name(dest.name + ".part")
        self.note = dest.with_name(dest.name + ".part.json")

    def resumable(self, url: str) -> tuple[int, str | None]:
        """Bytes already held for ``url`` and the validator they were served with."""
        if not self.path.is_file() or not self.note.is_file():
            return 0, None
        try:
            note = json.loads(self.note.read_text())
        except ValueError:
            return 0, None
        if note.get("url") != url:
            return 0, None
        return self.path.stat().st_size, note.get("validator")

    def start(self, url: str, validator: str | None) -> None:
        self.note.write_text(json.dumps({"url": url, "validator": validator}))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.note.unlink(missing_ok=True)


def download(url: str, dest: Path, *, page: str, timeout: float, label: str) -> Path:
    """Downloads ``url`` into ``DEST.part`` (resuming what an earlier run left) and returns it.

    A transfer cut off after some bytes is resumed at once (up to five times); one that brings
    nothing fails, and the next run resumes it. A server that ignores ``Range``, or a file that
    changed since the part was written (``If-Range``), restarts it from the first byte.
    """
    part = _Part(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    error: httpx.HTTPError = httpx.RemoteProtocolError("the server kept ending the transfer early")
    for _ in range(ATTEMPTS):
        try:
            with _client(timeout) as client:
                _transfer(client, url, part, page, dest, label)
            part.note.unlink(missing_ok=True)
            return part.path
        except _Restart:
            continue
        except _Cut as cut:
            error = cut.error
            if cut.received == 0:
                break
        except httpx.HTTPError as exc:
            error = exc
            break
    raise _transport(error, url, timeout) from None


class _Cut(Exception):
    """A transfer that broke off after ``received`` bytes."""

    def __init__(self, received: int, error: httpx.HTTPError):
        self.received, self.error = received, error


class _Restart(Exception):
    """The held part no longer fits the file: it was dropped; start again."""


def _transfer(
    client: httpx.Client, url: str, part: _Part, page: str, dest: Path, label: str
) -> None:
    held, validator = part.resumable(url)
    headers = {"Range": f"bytes={held}-"} if held else {}
    if held and validator:
        headers["If-Range"] = validator
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416:
            if response.headers.get("content-range") == f"bytes */{held}":
                return  # an earlier run got every byte and stopped before moving them
            part.discard()
            raise _Restart
        if response.status_code >= 400:
            raise _refusal(response, page)
        page_error = _web_page(response, page, dest)
        if page_error is not None:
            raise page_error
        if response.status_code != 206:
            held = 0
        part.start(url, _validator(response))
        length = response.headers.get("content-length")
        total = held + int(length) if length and length.isdigit() else None
        received = 0
        with (
            open(part.path, "ab" if held else "wb") as handle,
            tqdm(
                total=total,
                initial=held,
                desc=label,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                disable=None,
                leave=False,
            ) as bar,
        ):
            try:
                for chunk in response.iter_raw():
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except httpx.HTTPError as exc:
                raise _Cut(received, exc) from None
        if total is not None and held + received < total:
            raise _Cut(received, httpx.RemoteProtocolError("the server ended the transfer early"))

"""`cryotune weights fetch`: a plan of what is missing (with sizes), then each file downloaded,
checked, converted where its source says so, and moved under its final name; one file's
failure is reported and the others go on.

A file is never half-written under its final name: downloads land in ``FILE.part`` (or a
hidden staging name beside it) and are moved into place only once checked. A download whose
sha256 differs from the expected one is refused and kept as ``FILE.rejected``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryotune.errors import CryotuneError
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.weights import file_sha256
from cryotune.weights import hub, web
from cryotune.weights.convert import convert
from cryotune.weights.ledger import Ledger
from cryotune.weights.sources import HubFile, ManualFile, WeightsSource
from cryotune.weights.status import FileState, file_state, human_size
from cryotune.weights.web import FetchError, Remote

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Remotes:
    """Where sources are asked: the Hub's endpoint and cache (None: huggingface_hub's
    ``HF_ENDPOINT`` and ``HF_HUB_CACHE``), the HTTPS mirror (None: ``$CRYOTUNE_WEIGHTS_MIRROR``),
    and how long one request may stay silent (HTTPS transfers, the Hub's metadata requests)."""

    hub_endpoint: str | None = None
    hub_cache: str | None = None
    mirror: str | None = None
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Step:
    """One file of the plan. ``action``: ``present`` (left as it is), ``fetch``, ``manual`` (a
    person must download it) or ``failed`` (its source did not answer as it should)."""

    state: FileState
    action: str
    remote: Remote | None = None
    reason: str = ""

    @property
    def source(self) -> WeightsSource:
        return self.state.source


@dataclass(frozen=True)
class Outcome:
    """What became of one file: ``present``, ``fetched``, ``manual`` or ``failed``."""

    source: WeightsSource
    status: str
    message: str


def _probe(source: WeightsSource, folder: Path, remotes: Remotes) -> Remote:
    origin = source.origin
    if isinstance(origin, HubFile):
        return hub.probe(origin, remotes.hub_endpoint, remotes.timeout)
    url = web.mirrored(origin.url, remotes.mirror)
    return web.probe(url, origin.page, folder / source.file, remotes.timeout)


def plan(sources: list[WeightsSource], folder: Path, remotes: Remotes) -> list[Step]:
    """Each source's step; the files to fetch are asked for their size (and published sha256)."""
    ledger = Ledger(folder)
    steps = []
    for source in sources:
        state = file_state(source, folder, ledger)
        if state.status in ("verified", "unverified"):
            steps.append(Step(state, "present"))
        elif isinstance(source.origin, ManualFile):
            reason = (
                f"download it by hand from {source.origin.page} ({source.origin.how}), save it "
                f"as {folder / source.file}"
            )
            steps.append(Step(state, "manual", reason=reason))
        else:
            try:
                steps.append(Step(state, "fetch", _probe(source, folder, remotes)))
            except FetchError as exc:
                steps.append(Step(state, "failed", reason=str(exc)))
    return steps


def plan_lines(steps: list[Step], folder: Path) -> list[str]:
    """The plan as printed before anything is downloaded: sizes first."""
    fetch = [s for s in steps if s.action == "fetch"]
    sizes = [s.remote.size for s in fetch if s.remote is not None]
    known = sum(size for size in sizes if size is not None)
    total = human_size(known) + (" and files of unknown size" if None in sizes else "")
    lines = [f"weights folder: {folder}"]
    lines.append(f"to fetch: {len(fetch)} file(s), {total}" if fetch else "to fetch: nothing")
    label_width = max((len(s.source.label) for s in steps), default=0)
    file_width = max((len(s.source.file) for s in steps), default=0)
    for step in steps:
        source = step.source
        head = f"  {source.label:<{label_width}}  {source.file:<{file_width}}"
        if step.action == "fetch":
            size = human_size(step.remote.size if step.remote else None)
            again = (
                " (replaces a file with a wrong hash)" if step.state.status == "wrong-hash" else ""
            )
            lines.append(f"{head} {size:>10}  from {source.origin.describe()}{again}")
        elif step.action == "present":
            lines.append(f"{head} {'present':>10}  ({step.state.status})")
        elif step.action == "manual":
            lines.append(f"{head} {'manual':>10}  {step.reason}")
        else:
            lines.append(f"{head} {'failed':>10}  {step.reason}")
    return lines


def _aside(path: Path, source: WeightsSource) -> Path:
    rejected = path.with_name(f"{source.file}.rejected")
    os.replace(path, rejected)
    return rejected


def _stage_hub(
    source: WeightsSource, origin: HubFile, folder: Path, remotes: Remotes, force: bool
) -> Path:
    """The Hub's cached file linked (else copied) beside its final name, under a hidden one."""
    cached = hub.download(origin, remotes.hub_endpoint, remotes.hub_cache, force).resolve()
    staged = folder / f".{source.file}.download"
    staged.unlink(missing_ok=True)
    try:
        os.link(cached, staged)
    except OSError:
        shutil.copyfile(cached, staged)
    return staged


EXPECTED_FROM = {
    "official": "the sha256 cryotune's registry publishes",
    "hub": "the sha256 the Hub publishes",
    "recorded": "the sha256 recorded at the first fetch",
}


def _expected(step: Step, ledger: Ledger) -> tuple[str | None, str]:
    """The sha256 the release must have and where it comes from (``EXPECTED_FROM``): the
    registry, the source at fetch time, or an earlier fetch of this file."""
    if step.source.sha256:
        return step.source.sha256, "official"
    if step.remote is not None and step.remote.sha256:
        return step.remote.sha256, "hub"
    entry = ledger.get(step.source.file)
    if entry is not None and entry.model == step.source.model:
        return entry.source_sha256, "recorded"
    return None, "recorded"


def _download(step: Step, folder: Path, remotes: Remotes, expected: str | None) -> tuple[Path, str]:
    """The downloaded release beside its final name, and its sha256."""
    source, origin = step.source, step.source.origin
    if isinstance(origin, HubFile):
        staged = _stage_hub(source, origin, folder, remotes, force=False)
        digest = file_sha256(staged)
        if expected and digest != expected:  # a damaged copy in the Hub's cache: once more
            staged = _stage_hub(source, origin, folder, remotes, force=True)
            digest = file_sha256(staged)
        return staged, digest
    url = web.mirrored(origin.url, remotes.mirror)
    dest = folder / source.file
    part = web.download(url, dest, page=origin.page, timeout=remotes.timeout, label=source.file)
    return part, file_sha256(part)


def _convert(
    source: WeightsSource, staged: Path, folder: Path, overrides: Mapping[str, object] | None
) -> tuple[Path, str]:
    converted = folder / f".{source.file}.converted"
    try:
        sha = convert(source.convert, get_encoder_spec(source.model), staged, converted, overrides)
    except CryotuneError as exc:
        converted.unlink(missing_ok=True)
        kept = _aside(staged, source)
        raise FetchError(
            f"refused: the release converted ({source.convert}) does not load: {exc}; kept the "
            f"release as {kept}"
        ) from None
    staged.unlink()
    return converted, sha


def fetch_step(
    step: Step,
    folder: Path,
    remotes: Remotes,
    overrides: Mapping[str, object] | None = None,
) -> Outcome:
    """Downloads, checks, converts and places one file; FetchError says why it could not.
    ``overrides`` shrink the encoder a conversion is checked against (tests)."""
    source = step.source
    dest = folder / source.file
    folder.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(folder)
    notes = []
    if step.state.status == "wrong-hash" and step.state.path is not None:
        notes.append(f"the file with the wrong hash was kept as {_aside(step.state.path, source)}")
    expected, expected_from = _expected(step, ledger)
    staged, digest = _download(step, folder, remotes, expected)
    if expected and digest != expected:
        kept = _aside(staged, source)
        advice = (
            f"; if the source replaced the file on purpose, remove the entry '{source.file}' "
            f"from {ledger.path} and fetch again"
            if expected_from == "recorded"
            else ""
        )
        raise FetchError(
            f"refused: the download's sha256 {digest} is not {EXPECTED_FROM[expected_from]} "
            f"({expected}); kept it as {kept}{advice}"
        )
    stored = digest
    if source.convert:
        staged, stored = _convert(source, staged, folder, overrides)
    os.replace(staged, dest)
    ledger.record(
        source.file,
        dest,
        model=source.model,
        sha256=stored,
        source=source.origin.describe(),
        sha256_from=expected_from,
        source_sha256=digest,
        converted=source.convert,
    )
    check = (
        f"sha256 {digest[:12]}... is {EXPECTED_FROM[expected_from]}"
        if expected
        else f"sha256 {digest[:12]}... recorded (the source publishes none)"
    )
    done = f"{dest} ({human_size(dest.stat().st_size)}); {check}"
    if source.convert:
        done += f"; stored {source.convert} (sha256 {stored[:12]}...), loads strictly"
    return Outcome(source, "fetched", "; ".join([done, *notes]))


def run(
    steps: list[Step],
    folder: Path,
    remotes: Remotes,
    report: Callable[[Outcome], None] = lambda outcome: None,
    overrides: Mapping[str, object] | None = None,
) -> list[Outcome]:
    """Carries out the plan, one file at a time; ``report`` sees each outcome as it comes."""
    outcomes = []
    for step in steps:
        if step.action == "fetch":
            try:
                outcome = fetch_step(step, folder, remotes, overrides)
            except (CryotuneError, OSError) as exc:
                outcome = Outcome(step.source, "failed", str(exc))
        elif step.action == "present":
            outcome = Outcome(step.source, "present", f"{step.state.path} ({step.state.status})")
        else:
            outcome = Outcome(step.source, step.action, step.reason)
        report(outcome)
        outcomes.append(outcome)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """``2 fetched, 1 failed, 1 manual``, in the order the statuses first came."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())

"""User-facing errors: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

from collections.abc import Iterable


class CryotuneError(Exception):
    """An error the user can fix: bad input, missing data or weights, unreachable service."""

    exit_code = 1


class UsageError(CryotuneError):
    """Bad command-line usage or configuration (exit code 2)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A dataset, model, sweep or config key that does not exist."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} '{name}'; valid: {', '.join(self.valid)}")


class DataError(CryotuneError):
    """A dataset on disk that cannot be used as it is (layout, bands, masks, values)."""


class WeightsError(CryotuneError):
    """A checkpoint that is missing or does not match the architecture."""


class NotFoundError(UsageError):
    """A sweep, dataset or model with nothing recorded under that name; lists what exists."""

    def __init__(self, kind: str, name: str, existing: Iterable[str], where: str = ""):
        self.kind, self.name, self.existing = kind, name, sorted(set(existing))
        listing = ", ".join(self.existing) if self.existing else "none yet"
        place = f" in {where}" if where else ""
        super().__init__(f"no {kind} '{name}'{place}; {kind}s there: {listing}")

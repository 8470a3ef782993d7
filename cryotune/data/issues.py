"""A problem found in a dataset on disk: which file, what is wrong, and whether it blocks use."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from cryotune.errors import DataError


@dataclass(frozen=True)
class Issue:
    path: str
    problem: str
    severity: Literal["error", "warning"] = "error"

    def format(self) -> str:
        return f"{self.severity}: {self.path}: {self.problem}"

    def to_dict(self) -> dict:
        return asdict(self)


def errors_of(issues: Iterable[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


def raise_for_errors(issues: Iterable[Issue], context: str, limit: int = 20) -> None:
    """Raise one DataError listing the blocking issues (the first ``limit`` of them)."""
    errors = errors_of(issues)
    if not errors:
        return
    lines = [i.format() for i in errors[:limit]]
    more = f"; ... and {len(errors) - limit} more" if len(errors) > limit else ""
    raise DataError(f"{context}: {len(errors)} problem(s): " + "; ".join(lines) + more)

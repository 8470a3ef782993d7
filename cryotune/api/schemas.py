"""Answers of the API that are about the service rather than the sweeps."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    source: Literal["workspace", "mlflow"]


class Problem(BaseModel):
    """An error answer: what went wrong and, for an unknown name, what exists."""

    detail: str
    kind: str | None = None
    name: str | None = None
    existing: list[str] | None = None

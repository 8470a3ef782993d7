"""What every stored document shares: a schema version, and reading and writing by one class."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryotune.errors import DataError
from cryotune.files import write_text_atomic

Self = TypeVar("Self", bound="Document")


class DocumentError(DataError):
    """A stored document that cannot be read: the file (or store) and what is wrong."""


class Document(BaseModel):
    """A JSON document with a ``schema`` version; a newer version than this cryotune knows is
    refused by name rather than half-read."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    SCHEMA: ClassVar[int] = 1
    KIND: ClassVar[str] = "document"
    MIGRATIONS: ClassVar[dict[int, Callable[[dict], dict]]] = {}
    """schema N -> the function turning a version-N document into version N + 1."""

    schema_version: int = Field(alias="schema", description="version of this document's shape")

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Bring a document written by an older cryotune to this version's shape; one without
        a schema is as new as this cryotune."""
        if not isinstance(data, dict):
            return data
        version = data.get("schema", data.get("schema_version"))
        if version is None:
            return {**data, "schema": cls.SCHEMA}
        if not isinstance(version, int) or version > cls.SCHEMA:
            return data
        while version < cls.SCHEMA:
            data = cls.MIGRATIONS.get(version, lambda d: d)(data)
            version += 1
        data = {k: v for k, v in data.items() if k != "schema_version"}
        return {**data, "schema": version}

    @field_validator("schema_version")
    @classmethod
    def _known(cls, value: int) -> int:
        if value > cls.SCHEMA:
            raise ValueError(
                f"schema {value} is newer than this cryotune reads ({cls.SCHEMA}); upgrade cryotune"
            )
        return value

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def parse(cls: type[Self], data: object, where: str) -> Self:
        """Validate ``data`` (decoded JSON) read from ``where``; DocumentError naming it."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise DocumentError(f"{where}: not a {cls.KIND} ({problems})") from None

    @classmethod
    def parse_json(cls: type[Self], text: str, where: str) -> Self:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"{where}: not a {cls.KIND} (invalid JSON: {exc})") from None
        return cls.parse(data, where)

    @classmethod
    def read(cls: type[Self], path: Path) -> Self:
        try:
            text = path.read_text()
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{path}: not a {cls.KIND} (not UTF-8 text: {exc})") from None
        return cls.parse_json(text, str(path))

    def write(self, path: Path) -> None:
        write_text_atomic(path, self.to_json())

"""The read-only HTTP API over the query layer (``cryotune serve``)."""

from cryotune.api.app import create_app

__all__ = ["create_app"]

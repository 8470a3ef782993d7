"""Optional extras: parts of cryotune that need a package a plain install does not bring."""

from __future__ import annotations

import importlib.util

from cryotune.errors import UsageError


def require_extra(module: str, extra: str, package: str, what: str) -> None:
    """UsageError saying how to install ``package`` (the ``extra``) unless ``module`` imports."""
    if importlib.util.find_spec(module) is None:
        raise UsageError(
            f"{what} needs {package}, an optional extra: pip install 'cryotune[{extra}]' "
            f"(or pip install {package})"
        )

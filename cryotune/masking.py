"""Store URLs as they may be shown: in logs, records, MLflow artifacts and error messages."""

from __future__ import annotations


def masked_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; unparsable URLs are kept."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def masked_urls(value: object) -> object:
    """A JSON value with the password of every URL in it masked (a plan shared as an artifact)."""
    if isinstance(value, dict):
        return {key: masked_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked_urls(item) for item in value]
    if isinstance(value, str) and is_uri(value):
        return masked_url(value)
    return value


def is_uri(value: str) -> bool:
    return "://" in value

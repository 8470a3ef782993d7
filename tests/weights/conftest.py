"""Fixtures of the weights tests: the loopback checkpoint hosts (``weights_hosts``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from weights_hosts import Loopback, start_loopback


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    """The hub (which also serves the mirrored HTTPS sources) and its CDN, on 127.0.0.1."""
    state, servers = start_loopback()
    yield state
    for server in servers:
        server.shutdown()
        server.server_close()

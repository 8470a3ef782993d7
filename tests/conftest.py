"""Shared test setup: one torch thread (the CI machine is small and shared), and per-user
folders (data, caches) redirected into each test's tmp folder so tests never touch ``~``."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for var in ("CRYOTUNE_DATA", "CRYOTUNE_CACHE"):
        monkeypatch.delenv(var, raising=False)

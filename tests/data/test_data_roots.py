from __future__ import annotations

from pathlib import Path

import pytest

from cryotune.data.roots import find_root, resolve_root
from cryotune.errors import DataError


def _layout(root: Path) -> Path:
    (root / "train" / "image").mkdir(parents=True)
    return root


def test_explicit_root_wins_and_is_used_even_without_the_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOTUNE_DATA", str(tmp_path / "env"))
    _layout(tmp_path / "env" / "gld")
    given = tmp_path / "mine"
    given.mkdir()
    assert resolve_root("gld", given) == given
    assert find_root("gld", given) is None


def test_env_folder_then_per_user_default(tmp_path, monkeypatch):
    default = Path(tmp_path / "xdg") / "cryotune" / "data" / "gld"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _layout(default)
    assert resolve_root("gld", None) == default
    monkeypatch.setenv("CRYOTUNE_DATA", str(tmp_path / "env"))
    env = _layout(tmp_path / "env" / "gld")
    assert resolve_root("gld", None) == env
    assert find_root("gld") == env


def test_missing_data_names_every_path_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOTUNE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataError) as err:
        resolve_root("glid", None)
    assert str(tmp_path / "env" / "glid") in str(err.value)
    assert str(tmp_path / "xdg" / "cryotune" / "data" / "glid") in str(err.value)
    with pytest.raises(DataError, match="nowhere"):
        resolve_root("glid", tmp_path / "nowhere")
    assert find_root("glid", None) is None


def test_gld_archive_folder_resolves_to_its_glnet_folder(tmp_path):
    _layout(tmp_path / "GLD" / "GLNet")
    assert resolve_root("gld", tmp_path / "GLD") == tmp_path / "GLD" / "GLNet"
    assert find_root("gld", tmp_path / "GLD") == tmp_path / "GLD" / "GLNet"

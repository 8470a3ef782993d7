"""cryotune uses only the public APIs of the libraries it builds on: no private modules or names
of Ray, Optuna, timm, MLflow, torch, FastAPI or filelock are imported, and no private member of
another object is read (ruff's SLF rules, selected in pyproject.toml, hold the second part)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = (
    "ray|optuna|optuna_dashboard|timm|mlflow|torch|torchvision|fastapi|rasterio|pydantic|filelock"
    "|huggingface_hub|httpx|rich|pandas"
)
PRIVATE_IMPORT = re.compile(
    rf"^\s*(from\s+(?:{LIBRARIES})(?:\.\w+)*\.(_\w+)"  # from lib.pkg._private ...
    rf"|from\s+(?:{LIBRARIES})(?:\.\w+)*\s+import\s+.*\b(_\w+)"  # from lib.mod import _name
    rf"|import\s+(?:{LIBRARIES})(?:\.\w+)*\.(_\w+))",  # import lib._private
    re.MULTILINE,
)
INTERNAL_TAGS = re.compile(r"[\"']mlflow\.(loggedArtifacts|log-model\.history)[\"']")


def test_no_private_library_import_or_internal_mlflow_tag():
    sources = sorted([*ROOT.glob("cryotune/**/*.py"), *ROOT.glob("bench/**/*.py")])
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in sources
        for pattern in (PRIVATE_IMPORT, INTERNAL_TAGS)
        for match in pattern.finditer(path.read_text())
    ]
    assert not found, found


def test_the_check_finds_what_it_forbids():
    assert PRIVATE_IMPORT.search("from timm.models.vision_transformer import _convert_openai_clip")
    assert PRIVATE_IMPORT.search("from ray.tune.search._optuna import X")
    assert PRIVATE_IMPORT.search("import optuna._imports")
    assert not PRIVATE_IMPORT.search("from ray.tune.search import Searcher")

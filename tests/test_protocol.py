"""Departures from Cryo-Bench's protocol are named for every trial that makes one."""

from __future__ import annotations

from cryotune.config import TrialConfig
from cryotune.data.datasets import get_dataset
from cryotune.models.segmenter import build_segmenter
from cryotune.protocol import deviations

PAPER = {"val_every": 5, "precision": "fp32", "neck_pool": "floor", "swin_taps": "merged"}


def _departures(**changes) -> list[str]:
    config = TrialConfig(dataset="gld", model="ssl4eo_mae", weights="random", **changes)
    info = build_segmenter(config, get_dataset("gld")).info
    values = {**PAPER, **changes, "view": info["view"]}
    return deviations(values, set(info["protocol_settings"]), info["paper_view"])


def test_the_paper_settings_depart_from_nothing():
    assert _departures() == []


def test_each_option_is_named_with_the_papers_value():
    named = _departures(val_every=1, precision="bf16", neck_pool="ceil")
    assert [d.split(" ")[0] for d in named] == ["val_every=1", "precision=bf16", "neck_pool=ceil"]
    assert "(Cryo-Bench: fp32;" in named[1]


def test_a_requested_view_departs_even_where_the_paper_names_none():
    """Cryo-Bench lists no GLD view per model: the view it would have fed is the reference."""
    assert get_dataset("gld").paper_view("ssl4eo_mae") is None
    (view,) = _departures(view="sar")
    assert view.startswith("view=sar (Cryo-Bench: optical+sar")


def test_swin_taps_act_only_on_gfm_swin():
    assert "swin_taps=stages" not in " ".join(_departures(swin_taps="stages"))

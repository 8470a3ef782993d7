"""The reference numbers shown beside tuned results, and where each comes from."""

from __future__ import annotations

from cryotune.models.encoders import ENCODERS
from cryotune.reference import (
    LATER_SOURCE,
    PAPER_SOURCE,
    PROTOCOL_NOTES,
    later_frozen_miou,
    paper_frozen_miou,
)


def test_the_paper_table_covers_every_paper_model_on_its_five_datasets():
    paper = [k for k, e in ENCODERS.items() if e.roster != "later"]
    for model in paper:
        for dataset in ("glid", "gld", "sicd", "caffe", "gsdd"):
            assert paper_frozen_miou(dataset, model) is not None, (model, dataset)
    assert paper_frozen_miou("sicd", "terramind") == 31.48
    assert paper_frozen_miou("glb", "dofa") is None


def test_sicd_numbers_say_which_protocol_measured_them():
    assert "centre crop" in PAPER_SOURCE and "docs/protocol.md" in PAPER_SOURCE
    assert "whole" in PROTOCOL_NOTES["sicd"]
    assert "whole-scene" in LATER_SOURCE
    assert later_frozen_miou("sicd", "terramind") == 33.27
    assert later_frozen_miou("sicd", "unet") == 27.17
    assert later_frozen_miou("sicd", "ramen") is None  # removed from the later roster
    assert later_frozen_miou("gld", "dofa") is None  # GLD replaced by GLB there

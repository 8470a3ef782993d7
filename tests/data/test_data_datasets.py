from __future__ import annotations

import pytest

from cryotune.data.datasets import DATASETS, get_dataset
from cryotune.errors import UnknownNameError

KEYS = ("glid", "gld", "gsdd", "sicd", "caffe", "glb", "shelf")


def test_registry_holds_every_cryobench_dataset():
    assert tuple(DATASETS) == KEYS


def test_unknown_dataset_lists_the_valid_keys():
    with pytest.raises(UnknownNameError) as err:
        get_dataset("glnet")
    message = str(err.value)
    assert "glnet" in message
    assert all(key in message for key in KEYS)


@pytest.mark.parametrize("key", KEYS)
def test_every_spec_documents_its_statistics_and_provenance(key):
    spec = get_dataset(key)
    assert spec.stats_note and spec.source and "Cryo-Bench" in spec.citation
    for m in spec.modalities:
        assert len(m.bands) == len(m.mean) == len(m.std) == len(m.file_bands)
    if spec.class_distribution is not None:
        assert len(spec.class_distribution) == spec.num_classes
        assert sum(spec.class_distribution) == pytest.approx(1, abs=0.02)  # sicd: 0.983


def test_gld_routes_raw_band_6_to_sar_and_the_other_nine_to_optical():
    spec = get_dataset("gld")
    assert spec.modality("sar").file_bands == (6,)
    assert spec.modality("sar").bands == ("VV",)
    optical = spec.modality("optical")
    assert optical.file_bands == (0, 1, 2, 3, 4, 5, 7, 8, 9)
    assert optical.bands == ("B2", "B3", "B4", "B8", "B11", "B8A", "B5", "B6", "B7")
    assert optical.mean[5] == 18645.66 and spec.modality("sar").std == (30.97,)


def test_caffe_grey_optical_variant_is_a_fallback_sharing_one_cached_channel():
    spec = get_dataset("caffe")
    assert [m.name for m in spec.primary_modalities] == ["sar"]
    optical = spec.modality("optical")
    assert optical.fallback and optical.bands == ("B4", "B3", "B2")
    plan = spec.channel_plan()
    assert plan.file_bands == (0,)
    assert plan.modality_channels == {"sar": (0,), "optical": (0, 0, 0)}


def test_large_scene_datasets_are_marked_for_crops_and_full_coverage_evaluation():
    assert {k for k, s in DATASETS.items() if s.scenes} == {"sicd", "caffe"}
    assert get_dataset("sicd").ignore_index == 255
    assert get_dataset("sicd").num_classes == 6

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cryotune.data.bands import ANY_BANDS, WAVELENGTHS_UM, map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import UsageError

S2_13 = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")


def test_s2_encoder_on_glid_rgb_fills_every_band_but_rgb():
    mapping = map_bands(get_dataset("glid"), {"optical": S2_13}, "ssl4eo_moco")
    assert mapping.inputs == {"optical": S2_13}
    assert mapping.sources["optical"][1:4] == (2, 1, 0)
    assert mapping.filled == tuple(f"optical:{b}" for b in S2_13 if b not in ("B2", "B3", "B4"))
    assert mapping.wavelengths["optical"][S2_13.index("B8A")] == 0.864
    rgb = np.stack([np.full((4, 5), v, np.float32) for v in (1.0, 2.0, 3.0)])  # B4, B3, B2
    out = mapping.apply({"optical": rgb})["optical"]
    assert out.shape == (13, 4, 5) and out.dtype == torch.float32
    assert out[1].eq(3).all() and out[2].eq(2).all() and out[3].eq(1).all()
    assert out[0].eq(0).all() and out[4:].eq(0).all()


def test_apply_handles_batches_and_tensors():
    mapping = map_bands(get_dataset("glid"), {"optical": ("B2", "B8")}, "x")
    batch = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    out = mapping.apply({"optical": batch})["optical"]
    assert out.shape == (2, 2, 2, 2)
    assert torch.equal(out[:, 0], batch[:, 2]) and out[:, 1].eq(0).all()


def test_sar_only_encoder_on_caffe_gets_the_sar_band():
    mapping = map_bands(get_dataset("caffe"), {"sar": ("VV", "VH")}, "ssl4eo_mae_sar")
    assert mapping.inputs == {"sar": ("VV", "VH")}
    assert mapping.sources == {"sar": (0, None)}
    assert mapping.filled == ("sar:VH",)
    assert mapping.dataset_modalities == ("sar",)


def test_optical_only_encoder_on_caffe_uses_the_grey_fallback():
    mapping = map_bands(get_dataset("caffe"), {"optical": ("B2", "B3", "B4")}, "remoteclip")
    assert mapping.inputs == {"optical": ("B2", "B3", "B4")}
    assert mapping.sources == {"optical": (2, 1, 0)}
    assert mapping.filled == ()
    grey = np.full((3, 2, 2), 5.0, np.float32)
    assert mapping.apply({"optical": grey})["optical"].eq(5).all()


def test_encoder_with_both_modalities_on_caffe_skips_the_fallback():
    mapping = map_bands(
        get_dataset("caffe"), {"optical": S2_13[:4], "sar": ("VV", "VH")}, "terramind"
    )
    assert list(mapping.inputs) == ["sar"]


def test_encoder_with_no_modality_in_common_raises_naming_both_sides():
    with pytest.raises(UsageError) as err:
        map_bands(get_dataset("glid"), {"sar": ("VV", "VH")}, "croma_sar")
    message = str(err.value)
    assert "croma_sar" in message and "glid" in message
    assert "sar: VV,VH" in message and "optical: B4,B3,B2" in message


def test_placeholder_names_match_by_name_and_no_match_is_still_valid():
    gld = get_dataset("gld")
    mapping = map_bands(gld, {"optical": ("B1", "B9", "B10")}, "odd")
    assert mapping.sources == {"optical": (None, None, None)}
    assert mapping.filled == ("optical:B1", "optical:B9", "optical:B10")
    assert mapping.apply({"optical": np.ones((9, 2, 2), np.float32)})["optical"].eq(0).all()
    rgb = map_bands(gld, {"optical": ("B4", "B3", "B2")}, "rgb")
    assert rgb.sources == {"optical": (2, 1, 0)} and rgb.filled == ()


def test_any_bands_concatenates_every_primary_band_with_wavelengths():
    glb = get_dataset("glb")
    mapping = map_bands(glb, ANY_BANDS, "dofa")
    names = glb.modality("optical").bands + glb.modality("sar").bands
    assert mapping.inputs == {"all": names}
    assert mapping.wavelengths["all"][-2:] == (3.75, 3.75)
    assert mapping.wavelengths["all"][names.index("SLOPE")] == WAVELENGTHS_UM["SLOPE"]
    assert mapping.dataset_modalities == ("optical", "sar")
    sample = {"optical": np.zeros((9, 2, 2), np.float32), "sar": np.ones((2, 2, 2), np.float32)}
    out = mapping.apply(sample)["all"]
    assert out.shape == (11, 2, 2) and out[9:].eq(1).all() and out[:9].eq(0).all()
    caffe = map_bands(get_dataset("caffe"), ANY_BANDS, "dofa")
    assert caffe.inputs == {"all": ("VV",)}


SICD_RGB_LOOP = (
    "vit gfm_swin prithvi remoteclip satlas scalemae spectralgpt ssl4eo_moco ssl4eo_dino "
    "ssl4eo_mae ssl4eo_data2vec terramind"
).split()
SICD_SAR_LOOP = ["dofa", "croma", "ramen"]
CAFFE_OPTICAL_LOOP = (
    "gfm_swin prithvi remoteclip satlas scalemae spectralgpt ssl4eo_moco ssl4eo_dino "
    "ssl4eo_data2vec vit unet"
).split()
CAFFE_SAR_LOOP = ["croma", "dofa", "ssl4eo_mae", "terramind", "ramen"]


@pytest.mark.parametrize(
    ("dataset", "views"),
    [
        (
            "sicd",
            {
                **dict.fromkeys(SICD_RGB_LOOP + ["unet"], "optical"),
                **dict.fromkeys(SICD_SAR_LOOP, "sar"),
            },
        ),
        (
            "caffe",
            {
                **dict.fromkeys(CAFFE_OPTICAL_LOOP, "optical"),
                **dict.fromkeys(CAFFE_SAR_LOOP, "sar"),
            },
        ),
    ],
)
def test_every_paper_model_reads_the_view_cryobench_ran_it_on(dataset, views):
    """The run lists of Cryo-Bench's pangaea-bench/README.md (SICD: ai4arctic_rgb and
    ai4arctic_terramind loops; CaFFe: zone_mapping_optical and zone_mapping_sar loops)."""
    from cryotune.models.encoders import ENCODERS

    spec = get_dataset(dataset)
    paper = [k for k, e in ENCODERS.items() if e.roster != "later"]
    assert sorted(views) == sorted(paper)
    for model, view in views.items():
        mapping = map_bands(spec, ENCODERS[model].bands, model)
        assert mapping.view == view, model
        assert "Cryo-Bench" in mapping.describe()


def test_sicd_rgb_proxy_feeds_all_three_bands_as_b4_b3_b2():
    sicd = get_dataset("sicd")
    rgb = map_bands(sicd, {"optical": ("B4", "B3", "B2")}, "remoteclip")
    assert rgb.inputs == {"optical": ("B4", "B3", "B2")} and rgb.filled == ()
    plan = sicd.channel_plan(("optical",))
    assert plan.file_bands == (0, 1, 2)
    assert plan.mean == (-0.16381396, -0.22024433, -0.12)
    assert plan.std == (0.61435765, 0.37416646, 0.12)
    assert sicd.channel_plan(("sar",)).file_bands == (0, 1)
    assert sicd.stored_modalities() == ("sar",)
    assert sicd.stored_modalities(("optical",)) == ("sar", "optical")


def test_a_requested_view_overrides_the_papers_and_a_wrong_one_names_the_valid_ones():
    from cryotune.models.encoders import ENCODERS

    sicd = get_dataset("sicd")
    terramind = ENCODERS["terramind"]
    assert map_bands(sicd, terramind.bands, "terramind").view == "optical"
    sar = map_bands(sicd, terramind.bands, "terramind", view="sar")
    assert sar.view == "sar" and sar.view_source == "requested"
    with pytest.raises(UsageError, match="--view sar: encoder 'remoteclip'.*valid: optical"):
        map_bands(sicd, ENCODERS["remoteclip"].bands, "remoteclip", view="sar")
    with pytest.raises(UsageError, match="--view thermal: dataset 'sicd'.*valid: sar, optical"):
        map_bands(sicd, terramind.bands, "terramind", view="thermal")


def test_unknown_encoder_band_name_is_a_usage_error():
    with pytest.raises(UsageError, match="'bad'.*B13"):
        map_bands(get_dataset("glid"), {"optical": ("B2", "B13")}, "bad")


def test_mapping_serialises_for_logging_and_sentinel_survives_pickling():
    mapping = map_bands(get_dataset("gld"), {"optical": S2_13, "sar": ("VV", "VH")}, "croma")
    d = mapping.to_dict()
    assert d["filled"] == list(mapping.filled) and d["encoder"] == "croma"
    assert d["sources"]["sar"] == [0, None]
    assert pickle.loads(pickle.dumps(ANY_BANDS)) is ANY_BANDS
    assert pickle.loads(pickle.dumps(mapping)) == mapping


def test_stored_channels_fold_concatenation_and_fill_into_one_gather():
    caffe, gld = get_dataset("caffe"), get_dataset("gld")
    grey = map_bands(caffe, {"optical": ("B4", "B3", "B2")}, "rgb")
    assert grey.stored_channels(caffe.channel_plan().modality_channels) == {"optical": (0, 0, 0)}
    both = map_bands(gld, {"optical": ("B1", "B4"), "sar": ("VV",)}, "x")
    channels = gld.channel_plan().modality_channels
    assert both.stored_channels(channels) == {
        "optical": (None, channels["optical"][2]),
        "sar": channels["sar"],
    }
    everything = map_bands(gld, ANY_BANDS, "unet").stored_channels(channels)
    assert everything == {"all": channels["optical"] + channels["sar"]}

"""`--as terratorch` against TerraTorch's own names: the backbone is one its registry ships, the
necks, decoder, task and datamodule are TerraTorch classes, and what TerraTorch cannot express
is said. Names are transcribed from github.com/IBM/terratorch at commit 85467a9 (paths in the
comments), not taken from cryotune's tables."""

from __future__ import annotations

import pytest
import yaml

from cryotune.errors import CryotuneError
from cryotune.export.terratorch import terratorch_config

# fmt: off
# @TERRATORCH_BACKBONE_REGISTRY.register functions in terratorch/models/backbones/
# (prithvi_vit.py, terramind/model/terramind_register.py, dofa_vit.py, torchgeo_vit.py,
# torchgeo_swin_satlas.py)
BACKBONES = {
    "prithvi_eo_v1_100", "prithvi_eo_v2_300", "prithvi_eo_v2_600", "terramind_v1_base",
    "terramind_v1_large", "dofa_base_patch16_224", "dofa_large_patch16_224",
    "ssl4eos12_vit_small_patch16_224_sentinel2_all_moco",
    "ssl4eos12_vit_small_patch16_224_sentinel2_all_dino", "satlas_swin_b_sentinel2_si_ms",
    "satlas_swin_b_sentinel2_si_rgb",
}
# @TERRATORCH_NECK_REGISTRY.register classes in terratorch/models/necks.py
NECKS = {
    "SelectIndices", "AggregateTokens", "PermuteDims", "InterpolateToPyramidal",
    "MaxpoolToPyramidal", "ReshapeTokensToImage", "AddBottleneckLayer",
    "LearnedInterpolateToPyramidal", "FeaturePyramidNetworkNeck",
}
# terratorch/models/decoders/__init__.py
DECODERS = {"FCNDecoder", "IdentityDecoder", "LinearDecoder", "MLPDecoder", "UNetDecoder", "UperNetDecoder"}
# terratorch/datasets/utils.py, class HLSBands
HLS_BANDS = {
    "COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
    "NIR_BROAD", "NIR_NARROW", "SWIR_1", "SWIR_2", "WATER_VAPOR", "CIRRUS",
}
# terratorch/models/backbones/terramind/model/terramind_register.py: modality names
TERRAMIND_MODALITIES = {"S2L1C", "S2L2A", "S2RGB", "S1GRD", "S1RTC", "DEM"}
# fmt: on


@pytest.mark.parametrize(
    ("dataset", "model"),
    [
        ("glid", "prithvi"),
        ("gsdd", "ssl4eo_moco"),
        ("glid", "dofa"),
        ("caffe", "terramind"),
        ("gsdd", "satlas"),
        ("gsdd", "ssl4eo_dino"),
    ],
)
def test_the_config_names_terratorch_classes_and_backbones(dataset, model, best_record):
    exported = terratorch_config(best_record(dataset, model, depth=0, lr=2e-4))
    config = yaml.safe_load(exported.yaml)
    task = config["model"]["init_args"]
    args = task["model_args"]
    assert config["model"]["class_path"] == "terratorch.tasks.SemanticSegmentationTask"
    assert task["model_factory"] == "EncoderDecoderFactory"
    assert args["backbone"] in BACKBONES and args["decoder"] in DECODERS
    assert {n["name"] for n in args.get("necks", [])} <= NECKS
    for name in args.get("backbone_bands", args.get("backbone_model_bands", [])):
        assert name in HLS_BANDS | {"VV", "VH"}, name
    assert set(args.get("backbone_modalities", [])) <= TERRAMIND_MODALITIES
    assert config["data"]["class_path"] == "GenericNonGeoSegmentationDataModule"
    assert task["freeze_backbone"] is True and task["ignore_index"] in (-1, 255)
    assert config["optimizer"]["init_args"]["lr"] == 2e-4
    assert exported.text().startswith("# ") and "terratorch fit --config" in exported.text()


def test_caffe_terramind_reads_sar_through_s1grd(best_record):
    config = yaml.safe_load(terratorch_config(best_record("caffe", "terramind")).yaml)
    assert config["model"]["init_args"]["model_args"]["backbone_modalities"] == ["S1GRD"]


def test_prithvi_reads_the_glid_bands_it_has_by_terratorchs_names(best_record):
    config = yaml.safe_load(terratorch_config(best_record("glid", "prithvi")).yaml)
    assert config["model"]["init_args"]["model_args"]["backbone_bands"] == ["BLUE", "GREEN", "RED"]


def test_partial_depth_has_no_counterpart_and_says_so(best_record):
    exported = terratorch_config(best_record("glid", "prithvi", depth=4))
    assert "depth 4 of 12 blocks" in exported.no_counterpart[0]
    assert yaml.safe_load(exported.yaml)["model"]["init_args"]["freeze_backbone"] is False
    assert "not reproduced" in exported.text()


def test_a_model_terratorch_does_not_ship_is_refused_naming_those_it_does(best_record):
    with pytest.raises(CryotuneError, match=r"no backbone for model 'croma'.*dofa, prithvi"):
        terratorch_config(best_record("glid", "croma"))

"""`--as cryobench` against Cryo-Bench's own repository: every generated override names a config
that exists there and a key its configs hold, the README's run loops come out as written, and
what Cryo-Bench cannot express is said rather than dropped.

The expected names below are transcribed from github.com/Sk-2103/Cryo-Bench (paths in the
comments; ``pangaea-bench/`` at commit 41b6115, the root ``configs/`` at 3e94454), not taken from
cryotune's own tables.
"""

from __future__ import annotations

import shlex

import pytest

from cryotune.data.datasets import DATASETS
from cryotune.errors import CryotuneError, UsageError
from cryotune.export.cryobench import cryobench_run
from cryotune.models.encoders import ENCODERS

# fmt: off
# `git ls-tree pangaea-bench/configs/<group>/` at 41b6115, the groups a segmentation run sets
PAPER_CONFIGS = {
    "dataset": {
        "ai4arctic", "ai4arctic_rgb", "ai4arctic_terramind", "ai4smallfarms", "biomassters",
        "croptypemapping", "dynamicen", "fivebillionpixels", "fivebillionpixels_cross_sensors",
        "glid", "glnet_dataset", "gssd", "hlsburnscars", "mados", "mbigearthnet", "mbrickkiln",
        "mcashew-plantation", "mchesapeake-landcover", "meurosat", "mforestnet", "mneontree",
        "mnz-cattle", "mpv4ger-seg", "mpv4ger", "msa-crop-type", "mso2sat", "opencanopy",
        "pastis", "potsdam", "sen1floods11", "spacenet7", "spacenet7cd", "xview2",
        "zone_mapping_optical", "zone_mapping_sar",
    },
    "encoder": {
        "croma_joint", "croma_optical", "croma_sar", "dofa", "gfmswin", "prithvi", "ramen",
        "ramen_monotemporal", "remoteclip", "resnet50_pretrained", "resnet50_scratch",
        "satlasnet_mi", "satlasnet_si", "scalemae", "spectralgpt", "ssl4eo_data2vec",
        "ssl4eo_dino", "ssl4eo_mae_optical", "ssl4eo_mae_sar", "ssl4eo_moco", "terramind_base",
        "terramind_base_mm", "terramind_large", "terramind_large_mm", "unet_encoder",
        "unet_encoder_mi", "vit", "vit_mi", "vit_scratch",
    },
    "decoder": {
        "cls_knn", "cls_knn_multilabel", "cls_linear", "reg_unet", "reg_upernet",
        "reg_upernet_mt_linear", "reg_upernet_mt_ltae", "seg_linear", "seg_linear_mt",
        "seg_siamunet_conc", "seg_siamunet_diff", "seg_siamupernet_conc", "seg_siamupernet_diff",
        "seg_unet", "seg_upernet", "seg_upernet_mt_linear", "seg_upernet_mt_ltae",
        "seg_upernet_mt_none",
    },
    "preprocessing": {
        "cls_resize", "reg_default", "seg_default", "seg_default_profile", "seg_focus_crop",
        "seg_importance_crop", "seg_resize", "seg_sar_terramind", "seg_wo_norm",
    },
    "criterion": {
        "binary_cross_entropy", "cross_entropy", "dice", "mse", "none", "weighted_cross_entropy",
    },
    "task": {
        "change_detection", "knn_probe", "knn_probe_multi_label", "linear_classification",
        "linear_classification_multi_label", "profiler", "regression", "segmentation",
    },
}
# the root configs/ at 3e94454: the later code's new or changed configs
LATER_CONFIGS = {
    "dataset": {
        "ai4arctic", "ai4arctic_rgb", "glb_random", "glid", "gssd", "psfloods_rgvt",
        "shelf_bench", "sicd_rgb", "sicd_rgb224", "sicd_sar", "zone_mapping_optical",
        "zone_mapping_sar",
    },
    "encoder": {
        "dofa", "prithvi", "prithvi_eo_v2_300", "ramen_monotemporal", "terramind_large",
        "terramind_large_optical", "terramind_large_sar", "thor_large", "thor_tiny",
    },
}
# Keys the configs hold, as Hydra addresses them:
SETTABLE = {
    # pangaea-bench/configs/train.yaml
    "seed", "batch_size", "num_workers", "finetune", "limited_label_train", "work_dir",
    # pangaea-bench/configs/optimizer/adamw.yaml (lr: 1e-4, betas, weight_decay: 0.05)
    "optimizer.lr", "optimizer.betas", "optimizer.weight_decay",
    # pangaea-bench/configs/lr_scheduler/multi_step_lr.yaml (lr_milestones: [0.6, 0.9])
    "lr_scheduler.lr_milestones",
    # pangaea-bench/configs/task/segmentation.yaml, trainer: n_epochs 80, precision fp32,
    # eval_interval 5
    "task.trainer.n_epochs", "task.trainer.precision", "task.trainer.eval_interval",
    # pangaea-bench/configs/dataset/*.yaml: root_path
    "dataset.root_path",
    # pangaea-bench/configs/encoder/ramen_monotemporal.yaml: input_size, input_res 10.0, res 40.0
    "encoder.input_size", "encoder.input_res", "encoder.res",
}
# pangaea-bench/pangaea/engine/trainer.py: precision in ["fp32", "fp16", "bfp16"]
PRECISIONS = {"fp32", "fp16", "bfp16"}
# pangaea-bench/README.md: torchrun --nnodes=1 --nproc_per_node=1 pangaea/run.py
#   --config-name=train ... preprocessing=seg_default criterion=cross_entropy task=segmentation
LAUNCH = ["torchrun", "--nnodes=1", "--nproc_per_node=1", "pangaea/run.py", "--config-name=train"]
README_FIXED = {"preprocessing": "seg_default", "criterion": "cross_entropy", "task": "segmentation"}

# pangaea-bench/README.md's run loops: dataset config -> the encoder configs it runs
README_LOOPS = {
    # 2. Sea Ice, RGB / Optical Encoders
    "ai4arctic_rgb": "vit_scratch gfmswin prithvi remoteclip satlasnet_si scalemae spectralgpt "
    "ssl4eo_moco ssl4eo_dino ssl4eo_mae_optical ssl4eo_data2vec terramind_large",
    # 2. Sea Ice, SAR-Aware Encoders
    "ai4arctic_terramind": "dofa terramind_large croma_sar ramen_monotemporal",
    # 1. GLID, all other encoders
    "glid": "vit_scratch croma_optical dofa gfmswin prithvi remoteclip satlasnet_si scalemae "
    "spectralgpt ssl4eo_moco ssl4eo_dino ssl4eo_mae_optical ssl4eo_data2vec terramind_large",
    # 3. GSSD, complete bash script
    "gssd": "croma_optical dofa gfmswin prithvi remoteclip satlasnet_si scalemae spectralgpt "
    "ssl4eo_moco ssl4eo_dino ssl4eo_mae_optical ssl4eo_data2vec terramind_large vit "
    "unet_encoder",
    # 4. CaFFe, RGB / Optical Encoders
    "zone_mapping_optical": "gfmswin prithvi remoteclip satlasnet_si scalemae spectralgpt "
    "ssl4eo_moco ssl4eo_dino ssl4eo_data2vec vit_scratch unet_encoder",
    # 4. CaFFe, SAR-Aware Encoders
    "zone_mapping_sar": "croma_sar dofa ssl4eo_mae_sar terramind_large ramen_monotemporal",
}
README_DATASETS = {
    "ai4arctic_rgb": "sicd",
    "ai4arctic_terramind": "sicd",
    "glid": "glid",
    "gssd": "gsdd",
    "zone_mapping_optical": "caffe",
    "zone_mapping_sar": "caffe",
}
# Cryo-Bench's encoder config -> the cryotune model it is
README_MODELS = {
    "vit_scratch": "vit", "vit": "vit", "croma_optical": "croma", "croma_sar": "croma",
    "dofa": "dofa", "gfmswin": "gfm_swin", "prithvi": "prithvi", "remoteclip": "remoteclip",
    "satlasnet_si": "satlas", "scalemae": "scalemae", "spectralgpt": "spectralgpt",
    "ssl4eo_moco": "ssl4eo_moco", "ssl4eo_dino": "ssl4eo_dino",
    "ssl4eo_mae_optical": "ssl4eo_mae", "ssl4eo_mae_sar": "ssl4eo_mae",
    "ssl4eo_data2vec": "ssl4eo_data2vec", "terramind_large": "terramind",
    "ramen_monotemporal": "ramen", "unet_encoder": "unet",
}
# configs/encoder/terramind_large_sar.yaml (root, 3e94454): "TerraMind large, SAR-only --
# replicates the encoder config used for the February CaFFe (zone_mapping_sar) runs", which
# cryotune follows; pangaea-bench's terramind_large reads S2L2A only.
# docs/protocol.md: with the paper-era TerraMind config (S2L2A only) the SICD SAR run fed zeros;
# cryotune runs TerraMind on SICD as the README's RGB loop does.
README_EXCEPTIONS = {
    ("zone_mapping_sar", "terramind_large"): ("zone_mapping_sar", "terramind_large_sar"),
    ("ai4arctic_terramind", "terramind_large"): ("ai4arctic_rgb", "terramind_large"),
}
# fmt: on
# The later README reports every paper model on GLB and Shelf-Bench: their encoder configs are in
# the later code too (the index holds only the root's new or changed files). GLD's is not: the
# later code replaced GLD with GLB.
LATER_CONFIGS["encoder"] |= {e for loop in README_LOOPS.values() for e in loop.split()}


def _overrides(run) -> dict[str, str]:
    return dict(o.split("=", 1) for o in run.overrides)


def _pairs():
    return [(dataset, model) for dataset in DATASETS for model in ENCODERS]


@pytest.mark.parametrize(("dataset", "model"), _pairs())
def test_every_override_exists_in_cryobench(dataset, model, best_record):
    try:
        run = cryobench_run(best_record(dataset, model))
    except UsageError:  # cryotune never plans a model on a dataset it cannot read
        return
    except CryotuneError as exc:
        reason = str(exc)
        assert ("no Cryo-Bench encoder config reads" in reason and "--view" in reason) or (
            "no code with configs for both" in reason
        ), reason
        return
    configs = LATER_CONFIGS if run.tree == "later" else PAPER_CONFIGS
    assert run.argv[: len(LAUNCH)] == LAUNCH
    assert shlex.split(run.command) == run.argv
    for key, value in _overrides(run).items():
        if key in PAPER_CONFIGS:
            assert value in configs.get(key, PAPER_CONFIGS[key]), (key, value)
        else:
            assert key in SETTABLE, key
    overrides = _overrides(run)
    assert {k: overrides[k] for k in README_FIXED} == README_FIXED
    assert overrides.get("task.trainer.precision", "fp32") in PRECISIONS


@pytest.mark.parametrize("loop", list(README_LOOPS))
def test_the_readme_run_loops_come_out_as_written(loop, best_record):
    for encoder in README_LOOPS[loop].split():
        model = README_MODELS[encoder]
        run = cryobench_run(best_record(README_DATASETS[loop], model))
        expected = README_EXCEPTIONS.get((loop, encoder), (loop, encoder))
        if encoder == "vit" and loop == "gssd":
            # the GSSD script lists `vit` (ImageNet weights, frozen) while its elif treats
            # `vit_scratch` as the baseline; cryotune's vit is the from-scratch baseline
            expected = (loop, "vit_scratch")
        assert (run.dataset_config, run.encoder_config) == expected, (loop, encoder)
        # README: unet_encoder runs decoder=seg_unet finetune=True, vit_scratch finetune=True,
        # every GFM decoder=seg_upernet finetune=False
        decoder = "seg_unet" if encoder == "unet_encoder" else "seg_upernet"
        finetune = "True" if model in ("unet", "vit") else "False"
        assert (run.decoder_config, _overrides(run)["finetune"]) == (decoder, finetune)


def test_the_searched_settings_become_cryobench_overrides(best_record):
    record = best_record(
        "glid",
        "dofa",
        lr=2.5e-4,
        depth=12,
        epochs=40,
        batch_size=4,
        seed=7,
        label_fraction=0.1,
        weight_decay=0.01,
        val_every=2,
        data_root="/data/GLID",
    )
    overrides = _overrides(cryobench_run(record))
    assert overrides["optimizer.lr"] == "0.00025" and overrides["finetune"] == "True"
    assert overrides["task.trainer.n_epochs"] == "40" and overrides["batch_size"] == "4"
    assert overrides["seed"] == "7" and overrides["limited_label_train"] == "0.1"
    assert overrides["optimizer.weight_decay"] == "0.01"
    assert overrides["task.trainer.eval_interval"] == "2"
    assert overrides["dataset.root_path"] == "/data/GLID"
    assert "optimizer.betas" not in overrides  # Cryo-Bench's default, left out


def test_ramen_takes_the_geometry_of_cryobenchs_own_runs(best_record):
    # pangaea-bench/outputs/2026-02-15/09-54-57/.hydra/overrides.yaml (GLID) and
    # 2026-02-16/13-45-35 (SICD): encoder.input_size / input_res / res
    glid = _overrides(cryobench_run(best_record("glid", "ramen")))
    assert (glid["encoder.input_size"], glid["encoder.input_res"], glid["encoder.res"]) == (
        "512",
        "3.0",
        "24.0",
    )
    sicd = _overrides(cryobench_run(best_record("sicd", "ramen")))
    assert (sicd["encoder.input_size"], float(sicd["encoder.input_res"])) == ("128", 40.0)
    assert float(sicd["encoder.res"]) == 80.0


def test_what_cryobench_cannot_express_is_said_not_dropped(best_record):
    run = cryobench_run(
        best_record("sicd", "scalemae", depth=6, gamma=0.5, crop_size=64, neck_pool="ceil")
    )
    said = " ".join(run.no_counterpart)
    assert "depth 6 of 24 blocks" in said and "finetune=True trains all 24" in said
    assert _overrides(run)["finetune"] == "True"
    assert "gamma=0.5" in said and "crop_size=64" in said and "neck_pool=ceil" in said
    assert any("centre crop" in note and "sicd_rgb" in note for note in run.notes)
    text = run.text()
    assert "not reproduced" in text and "depth 6 of 24" in text
    assert "pangaea-bench/" in text and "41b6115" in text


def test_what_only_the_later_code_has_runs_at_the_repository_root(best_record):
    run = cryobench_run(best_record("glb", "unet"))
    assert (run.tree, run.folder, run.dataset_config) == ("later", ".", "glb_random")
    caffe = cryobench_run(best_record("caffe", "terramind"))
    assert (caffe.tree, caffe.encoder_config) == ("later", "terramind_large_sar")


def test_the_checkpoint_named_is_the_one_of_the_view_read(best_record):
    # pangaea-bench/configs/encoder/ssl4eo_mae_sar.yaml:
    #   encoder_weights: ./pretrained_models/B2_vits16_mae_ep99.pth
    sar = cryobench_run(best_record("caffe", "ssl4eo_mae", weights="random"))
    assert sar.encoder_config == "ssl4eo_mae_sar"
    assert any("B2_vits16_mae_ep99.pth" in item for item in sar.no_counterpart)
    # pangaea-bench/configs/encoder/dofa.yaml: ./pretrained_models/DOFA_ViT_base_e100.pth
    dofa = cryobench_run(best_record("glid", "dofa", weights="/weights"))
    assert any("DOFA_ViT_base_e100.pth" in note for note in dofa.notes)

"""Which files a sweep needs, and the missing-weights error naming the command that fetches them."""

from __future__ import annotations

import pytest

from cryotune.errors import WeightsError
from cryotune.sweep.plan import select_models
from cryotune.weights.needs import (
    check_pairs_weights,
    datasets_sources,
    fetch_command,
    pair_source,
)
from cryotune.weights.sources import source_for


def test_ssl4eo_mae_reads_caffe_with_its_sar_checkpoint():
    assert pair_source("caffe", "ssl4eo_mae").file == "B2_vits16_mae_ep99.pth"
    assert pair_source("glid", "ssl4eo_mae").file == "B13_vits16_mae_0099_ckpt.pth"
    assert pair_source("caffe", "ssl4eo_mae", view="optical").file == "B13_vits16_mae_0099_ckpt.pth"
    assert pair_source("glid", "unet") is None


def test_a_sweeps_files_are_those_of_every_model_that_fits():
    labels = [s.label for s in datasets_sources(["glid", "caffe"])]
    pairs, _ = select_models(["glid", "caffe"], None)
    models = {m for _, m in pairs} - {"unet", "vit"}
    assert {label.split(":")[0] for label in labels} == models
    assert "ssl4eo_mae:optical" in labels and "ssl4eo_mae:sar" in labels
    assert len(labels) == len(set(labels))


def test_the_fetch_command_names_exactly_the_files_and_the_folder():
    sources = [source_for("croma"), source_for("ssl4eo_mae", "sar")]
    assert fetch_command(sources, None) == "cryotune weights fetch croma ssl4eo_mae:sar"
    assert fetch_command(sources, "/my weights") == (
        "cryotune weights fetch croma ssl4eo_mae:sar --weights '/my weights'"
    )


def test_missing_weights_name_the_command_that_fetches_exactly_them(tmp_path):
    (tmp_path / "DOFA_ViT_base_e100.pth").write_bytes(b"x")
    pairs = [("glid", "dofa"), ("caffe", "ssl4eo_mae"), ("glid", "unet"), ("caffe", "croma")]
    with pytest.raises(WeightsError) as error:
        check_pairs_weights(pairs, str(tmp_path))
    message = str(error.value)
    assert message.startswith(
        f"missing weights in {tmp_path}: ssl4eo_mae:sar (B2_vits16_mae_ep99.pth), "
        "croma (CROMA_large.pt); fetch them with `cryotune weights fetch ssl4eo_mae:sar croma "
        f"--weights {tmp_path}`"
    )
    assert "dofa" not in message
    check_pairs_weights(pairs, "random")
    check_pairs_weights([("glid", "dofa")], str(tmp_path))


def test_the_default_folder_says_how_to_choose_another(monkeypatch, tmp_path):
    monkeypatch.delenv("CRYOTUNE_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match=r"\(the default; --weights DIR or \$CRYOTUNE_WEIGHTS"):
        check_pairs_weights([("glid", "dofa")], None)
    monkeypatch.setenv("CRYOTUNE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsError, match=rf"{tmp_path} \(\$CRYOTUNE_WEIGHTS\).*fetch dofa`"):
        check_pairs_weights([("glid", "dofa")], None)

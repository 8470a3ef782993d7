"""Hugging Face sources through huggingface_hub, its endpoint pointed at the loopback hub."""

from __future__ import annotations

import hashlib

import pytest

from cryotune.weights import hub
from cryotune.weights.sources import HubFile
from cryotune.weights.web import FetchError

ORIGIN = HubFile("wangyi111/SSL4EO-S12", "B2_vits16_mae_ep99.pth")
BODY = bytes(range(256)) * 64


def test_probe_reads_size_and_the_sha256_the_hub_publishes(loopback):
    loopback.hub_file(ORIGIN.repo, ORIGIN.filename, BODY)
    remote = hub.probe(ORIGIN, loopback.hub, timeout=5)
    assert remote.size == len(BODY)
    assert remote.sha256 == hashlib.sha256(BODY).hexdigest()
    assert remote.url == f"{loopback.hub}/{ORIGIN.repo}/resolve/main/{ORIGIN.filename}"


def test_download_goes_through_the_hub_cache_and_retries_a_cut_transfer(loopback, tmp_path):
    served = loopback.hub_file(ORIGIN.repo, ORIGIN.filename, BODY, drops=1, drop_after=4096)
    path = hub.download(ORIGIN, loopback.hub, str(tmp_path / "hf"))
    assert path.read_bytes() == BODY
    assert path.is_relative_to(tmp_path / "hf")
    assert len(loopback.ranges(f"/blobs/{served.sha256}")) == 2  # cut, then completed
    again = hub.download(ORIGIN, loopback.hub, str(tmp_path / "hf"))
    assert again == path and len(loopback.ranges(f"/blobs/{served.sha256}")) == 2  # cached


@pytest.mark.parametrize(
    ("how", "message"),
    [
        (
            {"status": 403, "error_code": "GatedRepo"},
            r"wangyi111/SSL4EO-S12 is gated: accept its terms at http://127\.0\.0\.1:\d+/"
            r"wangyi111/SSL4EO-S12 \(logged in\), then log in here with `hf auth login` or set "
            r"HF_TOKEN",
        ),
        (
            {"status": 404, "error_code": "EntryNotFound"},
            r"not found: B2_vits16_mae_ep99.pth is not in http://127\.0\.0\.1:\d+/"
            r"wangyi111/SSL4EO-S12 at 'main' \(HTTP 404\)",
        ),
        (
            {"status": 404, "error_code": "RepoNotFound"},
            r"repository http://127.0.0.1:\d+/wangyi111/SSL4EO-S12 not found",
        ),
    ],
    ids=["gated", "no-such-file", "no-such-repo"],
)
def test_hub_errors_say_what_to_do(loopback, tmp_path, how, message):
    loopback.hub_file(ORIGIN.repo, ORIGIN.filename, BODY, **how)
    with pytest.raises(FetchError, match=message):
        hub.probe(ORIGIN, loopback.hub, timeout=5)
    with pytest.raises(FetchError, match=message):
        hub.download(ORIGIN, loopback.hub, str(tmp_path / "hf"))


def test_an_unreachable_hub_is_named(tmp_path):
    with pytest.raises(FetchError, match=r"cannot reach http://127\.0\.0\.1:9"):
        hub.probe(ORIGIN, "http://127.0.0.1:9", timeout=2)

"""Plain HTTPS downloads against the loopback host: resuming, refusals, web pages, timeouts."""

from __future__ import annotations

import pytest

from cryotune.weights.web import FetchError, download, mirrored, probe

URL = "https://zenodo.org/records/8412455/files/SpectralGPT+.pth"
PAGE = "https://zenodo.org/records/8412455"
BODY = bytes(range(256)) * 64  # 16 kB


def _url(loopback) -> str:
    return mirrored(URL, loopback.hub)


def test_a_mirror_serves_each_host_under_its_name():
    assert mirrored(URL, "http://mirror.lan/weights/") == (
        "http://mirror.lan/weights/zenodo.org/records/8412455/files/SpectralGPT+.pth"
    )
    drive = "https://drive.google.com/uc?id=X&export=download"
    assert mirrored(drive, "http://m") == "http://m/drive.google.com/uc?id=X&export=download"
    assert mirrored(URL, "") == URL


def test_probe_reads_the_size_before_downloading(loopback, tmp_path):
    loopback.web_file(URL, BODY)
    remote = probe(_url(loopback), PAGE, tmp_path / "f", timeout=5)
    assert remote.size == len(BODY) and remote.sha256 is None
    assert not (tmp_path / "f").exists()


def test_a_transfer_cut_off_is_resumed_where_it_stopped(loopback, tmp_path):
    loopback.web_file(URL, BODY, drops=1, drop_after=5000)
    part = download(_url(loopback), tmp_path / "SpectralGPT+.pth", page=PAGE, timeout=5, label="x")
    assert part.read_bytes() == BODY and part.name == "SpectralGPT+.pth.part"
    assert loopback.ranges("SpectralGPT+.pth") == [None, "bytes=5000-"]


def test_a_later_run_resumes_what_an_earlier_one_left(loopback, tmp_path):
    dest = tmp_path / "SpectralGPT+.pth"
    loopback.web_file(URL, BODY, drops=5, drop_after=1000)
    with pytest.raises(FetchError, match="cannot download from 127.0.0.1"):
        download(_url(loopback), dest, page=PAGE, timeout=5, label="x")
    held = dest.with_name(dest.name + ".part")
    assert held.read_bytes() == BODY[:5000] and not dest.exists()
    part = download(_url(loopback), dest, page=PAGE, timeout=5, label="x")
    assert part.read_bytes() == BODY
    assert loopback.ranges("SpectralGPT+.pth")[-1] == "bytes=5000-"


def test_a_file_changed_since_the_part_was_written_starts_over(loopback, tmp_path):
    dest = tmp_path / "SpectralGPT+.pth"
    loopback.web_file(URL, BODY, drops=5, drop_after=1000)
    with pytest.raises(FetchError):
        download(_url(loopback), dest, page=PAGE, timeout=5, label="x")
    new = BODY[::-1]
    loopback.web_file(URL, new, validator='"v2"')
    assert download(_url(loopback), dest, page=PAGE, timeout=5, label="x").read_bytes() == new


def test_a_part_longer_than_the_file_now_is_dropped(loopback, tmp_path):
    dest = tmp_path / "SpectralGPT+.pth"
    loopback.web_file(URL, BODY, drops=5, drop_after=1000)
    with pytest.raises(FetchError):
        download(_url(loopback), dest, page=PAGE, timeout=5, label="x")
    loopback.web_file(URL, BODY[:3000])  # same validator, yet shorter than the 5000 bytes held
    assert (
        download(_url(loopback), dest, page=PAGE, timeout=5, label="x").read_bytes() == BODY[:3000]
    )


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, r"not found at http://127\.0\.0\.1:\d+/zenodo.org/.*SpectralGPT\+\.pth \(HTTP 404\)"),
        (403, r"HTTP 403\): it needs a login or a licence accepted; visit https://zenodo"),
        (500, r"HTTP 500 from http://127"),
    ],
)
def test_refusals_say_what_the_server_answered(loopback, tmp_path, status, message):
    loopback.web_file(URL, BODY, status=status)
    with pytest.raises(FetchError, match=message):
        download(_url(loopback), tmp_path / "f.pth", page=PAGE, timeout=5, label="x")
    with pytest.raises(FetchError, match=message):
        probe(_url(loopback), PAGE, tmp_path / "f.pth", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_a_web_page_instead_of_the_file_names_the_page_to_visit(loopback, tmp_path):
    drive = "https://drive.google.com/uc?id=ID&export=download&confirm=yes"
    page = "https://drive.google.com/file/d/ID/view"
    loopback.web_file(
        drive, b"<html>Google Drive can't scan this file</html>", content_type="text/html"
    )
    dest = tmp_path / "B13_vits16_moco_0099.pth"
    with pytest.raises(FetchError) as error:
        download(mirrored(drive, loopback.hub), dest, page=page, timeout=5, label="x")
    assert f"open {page} in a browser, download the file and save it as {dest}" in str(error.value)
    assert not dest.exists()


def test_a_silent_server_times_out_with_the_flag_to_raise(loopback, tmp_path):
    loopback.web_file(URL, BODY, delay=3)
    with pytest.raises(
        FetchError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.5 s \(see --timeout\)"
    ):
        download(_url(loopback), tmp_path / "f.pth", page=PAGE, timeout=0.5, label="x")

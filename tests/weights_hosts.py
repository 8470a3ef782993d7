"""A loopback stand-in for the checkpoint hosts, and tiny checkpoints in each family's official
key layout for it to serve.

``start_loopback`` (the ``loopback`` fixture) starts two real HTTP servers on 127.0.0.1: the
"hub" answers huggingface_hub's ``HEAD/GET {endpoint}/{repo}/resolve/{revision}/{file}`` as the
Hub does for an LFS file (a redirect to another host, a "CDN", carrying ``X-Repo-Commit``,
``X-Linked-Etag`` = the sha256 and ``X-Linked-Size``; ``X-Error-Code`` on errors), and serves
plain HTTPS sources under ``/{host}/{path}`` as ``$CRYOTUNE_WEIGHTS_MIRROR`` maps them. Each
served file can drop the connection part-way, stall past a timeout, or fail with a status.
Every request is logged.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import timm
import torch

from cryotune.weights.web import mirrored

COMMIT = "4" * 40
DIM, DEPTH, HEADS = 32, 2, 2
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (0, 1)}


@dataclass
class Served:
    """One file and how the server misbehaves with it: ``status`` (with the Hub's
    ``error_code``) instead of the file; the first ``drops`` transfers cut after ``drop_after``
    bytes; every answer ``delay`` seconds late; ``etag``: the sha256 the Hub advertises (default:
    the body's)."""

    body: bytes
    status: int | None = None
    error_code: str | None = None
    drops: int = 0
    drop_after: int = 0
    delay: float = 0.0
    etag: str | None = None
    content_type: str = "application/octet-stream"
    validator: str = '"v1"'

    @property
    def sha256(self) -> str:
        return self.etag or hashlib.sha256(self.body).hexdigest()


@dataclass
class Loopback:
    hub: str = ""
    cdn: str = ""
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def hub_file(self, repo: str, filename: str, body: bytes, **how) -> Served:
        served = Served(body, **how)
        self.files[f"/{repo}/resolve/main/{filename}"] = served
        self.files[f"/blobs/{served.sha256}"] = served
        return served

    def web_file(self, url: str, body: bytes, **how) -> Served:
        served = Served(body, **how)
        self.files[unquote(urlsplit(mirrored(url, self.hub)).path)] = served
        return served

    def ranges(self, path_end: str) -> list[str | None]:
        """The Range header of every GET whose path ends with ``path_end``."""
        return [r for m, p, r in self.requests if m == "GET" and p.endswith(path_end)]


def _handler(state: Loopback):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            state.requests.append((self.command, path, self.headers.get("Range")))
            served = state.files.get(path)
            if served is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                return
            time.sleep(served.delay)
            if served.status is not None:
                self.send_response(served.status)
                if served.error_code:
                    self.send_header("X-Error-Code", served.error_code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if "/resolve/" in path:
                self._redirect(served)
            else:
                self._file(served, body)

        def _redirect(self, served: Served) -> None:
            self.send_response(302)
            self.send_header("Location", f"{state.cdn}/blobs/{served.sha256}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{served.sha256}"')
            self.send_header("X-Linked-Size", str(len(served.body)))
            self.send_header("ETag", f'"{served.sha256}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _file(self, served: Served, body: bool) -> None:
            data, start, end = served.body, 0, len(served.body) - 1
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and (if_range is None or if_range == served.validator):
                first, _, last = wanted.removeprefix("bytes=").partition("-")
                start, end = int(first), min(int(last or end), end)
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", served.content_type)
            self.send_header("Content-Length", str(end + 1 - start))
            self.send_header("ETag", served.validator)
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not body:
                return
            chunk = data[start : end + 1]
            if served.drops > 0 and len(chunk) > served.drop_after:
                served.drops -= 1
                chunk = chunk[: served.drop_after]
                self.wfile.write(chunk)
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """Clients that time out or hang up mid-answer are part of the tests: no traceback."""


def start_loopback() -> tuple[Loopback, list[ThreadingHTTPServer]]:
    """The hub (which also serves the mirrored HTTPS sources) and its CDN, on 127.0.0.1."""
    state = Loopback()
    servers = [_Server(("127.0.0.1", 0), _handler(state)) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.hub, state.cdn = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    return state, servers


def saved(checkpoint: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def _timm_vit(in_chans: int) -> dict[str, torch.Tensor]:
    model = timm.create_model(
        "vit_small_patch16_224",
        pretrained=False,
        num_classes=0,
        in_chans=in_chans,
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=HEADS,
    )
    return {k: v.clone() for k, v in model.state_dict().items()}


def _mae_decoder() -> dict[str, torch.Tensor]:
    return {
        "mask_token": _rand(1, 1, 16),
        "decoder_embed.weight": _rand(16, DIM),
        "decoder_pos_embed": _rand(1, 197, 16),
        "decoder_blocks.0.attn.qkv.weight": _rand(48, 16),
        "decoder_norm.weight": _rand(16),
        "decoder_pred.weight": _rand(16 * 16 * 13, 16),
    }


def mae_checkpoint(in_chans: int = 13) -> dict:
    """SSL4EO-S12's MAE files (``B13_vits16_mae_0099_ckpt.pth``, 2 bands for the SAR
    ``B2_vits16_mae_ep99.pth``): MAE's ``{"model": ..., "args": ...}``."""
    return {"model": _timm_vit(in_chans) | _mae_decoder(), "args": argparse.Namespace(model="mae")}


def sar_mae_checkpoint() -> dict:
    return mae_checkpoint(in_chans=2)


def scalemae_checkpoint() -> dict:
    """Scale-MAE's release: timm ViT names beside its decoder, FPN and FCN heads."""
    extra = _mae_decoder() | {
        "mask_token_decoder": _rand(1, 1, 16),
        "fpn.fpn1.0.weight": _rand(16, 16, 2, 2),
        "fcn_high.layers.0.weight": _rand(16, 16, 3, 3),
    }
    return {"model": _timm_vit(3) | extra, "epoch": 800}


def terramind_checkpoint() -> dict[str, torch.Tensor]:
    """terratorch's TerraMind v1: encoder embeddings of every modality, SwiGLU blocks, and the
    generative decoder beside them."""
    hidden = int(2 * 4 * DIM / 3)
    official = {}
    for name, channels in (("untok_sen2l2a@224", 12), ("untok_sen1grd@224", 2)):
        official |= {
            f"encoder_embeddings.{name}.proj.weight": _rand(DIM, channels * 16 * 16),
            f"encoder_embeddings.{name}.pos_emb": _rand(1, 196, DIM),
            f"encoder_embeddings.{name}.mod_emb": _rand(1, 1, DIM),
        }
    for i in range(DEPTH):
        block = f"encoder.{i}."
        official |= {
            block + "norm1.weight": _rand(DIM),
            block + "norm1.bias": torch.zeros(DIM),
            block + "attn.qkv.weight": _rand(3 * DIM, DIM),
            block + "attn.proj.weight": _rand(DIM, DIM),
            block + "norm2.weight": _rand(DIM),
            block + "norm2.bias": torch.zeros(DIM),
            block + "mlp.fc1.weight": _rand(hidden, DIM),
            block + "mlp.fc2.weight": _rand(DIM, hidden),
            block + "mlp.fc3.weight": _rand(hidden, DIM),
        }
    official |= {
        "encoder_norm.weight": _rand(DIM),
        "encoder_norm.bias": torch.zeros(DIM),
        "decoder.0.self_attn.qkv.weight": _rand(3 * DIM, DIM),
        "decoder_embeddings.tok_sen2l2a@224.token_emb.weight": _rand(64, DIM),
        "decoder_norm.weight": _rand(DIM),
    }
    return official

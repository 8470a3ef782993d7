"""SSL4EO-S12 data2vec: a BEiT-style ViT-S/16 (timm ``Beit``).

What sets it apart from a plain ViT: no absolute position embedding but one relative position
bias table shared by all blocks, q/v-only attention biases and layer scale (init 0.1).
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.beit import Beit
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.errors import UsageError
from cryotune.models.encoders.base import TokenGrid, ViTEncoder
from cryotune.models.encoders.options import build_size, single_modality
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import PatchTokens, grid_patch_embed


def relative_position_index(height: int, width: int, window: tuple[int, int]) -> Tensor:
    """BEiT's ``(N+1, N+1)`` index into a table built for ``window``, for a smaller grid.

    Relative offsets of an h x w grid inside the window are a subset of the window's, so the
    pretrained table is indexed exactly (no interpolation); the three class-token entries
    stay at the table's end, as in BEiT.
    """
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])
    offsets = coords[:, :, None] - coords[:, None, :]
    span = 2 * window[1] - 1
    size = (2 * window[0] - 1) * span + 3
    count = height * width
    index = torch.zeros(count + 1, count + 1, dtype=torch.long)
    index[1:, 1:] = (offsets[0] + window[0] - 1) * span + offsets[1] + window[1] - 1
    index[0, :] = size - 3
    index[:, 0] = size - 2
    index[0, 0] = size - 1
    return index


class SharedBiasTokens(PatchTokens):
    """Patch tokens plus the shared relative position bias every block adds to its attention."""

    def __init__(self, *args, rel_pos_bias: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.rel_pos_bias = rel_pos_bias

    def forward(self, x: dict[str, Tensor]) -> TokenGrid:
        grid = super().forward(x)
        window = tuple(self.rel_pos_bias.window_size)
        if grid.height > window[0] or grid.width > window[1]:
            raise UsageError(
                f"encoder '{self.encoder}' takes at most {window[0] * self.patch_size}x"
                f"{window[1] * self.patch_size} px: its relative position table covers "
                f"{window[0]}x{window[1]} patches"
            )
        table = self.rel_pos_bias.relative_position_bias_table
        index = relative_position_index(grid.height, grid.width, window).to(table.device)
        count = grid.height * grid.width + 1
        bias = table[index.view(-1)].view(count, count, -1).permute(2, 0, 1).contiguous()
        grid.block_kwargs["shared_rel_pos_bias"] = bias
        return grid


def build_data2vec(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    modality = single_modality(spec, mapping)
    in_chans = len(mapping.inputs[modality])
    model = Beit(
        img_size=spec.input_size,
        patch_size=spec.patch_size,
        in_chans=in_chans,
        num_classes=0,
        global_pool="",
        embed_dim=size.embed_dim,
        depth=size.depth,
        num_heads=size.num_heads,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        init_values=float(spec.option("init_values")),
        use_abs_pos_emb=False,
        use_shared_rel_pos_bias=True,
    )
    patch_embed = grid_patch_embed(spec.input_size, spec.patch_size, in_chans, size.embed_dim)
    embed = SharedBiasTokens(
        spec.key,
        modality,
        in_chans,
        int(spec.patch_size),
        patch_embed,
        tuple(model.patch_embed.grid_size),
        cls_token=model.cls_token,
        rel_pos_bias=model.rel_pos_bias,
    )
    return ViTEncoder(
        spec.key, embed, list(model.blocks), size.embed_dim, size.tapped_layers, (modality,)
    )

import pytest
import torch

from cryotune.errors import DataError
from cryotune.models.decoders import UNetDecoder
from cryotune.models.encoders.unet import UNetEncoder

torch.set_num_threads(1)


def test_unet_encoder_has_the_cryo_bench_topology():
    encoder = UNetEncoder(in_channels=3)
    assert encoder.out_channels == [64, 128, 256, 512, 512]
    assert encoder.is_pyramid
    assert len(encoder.blocks()) == 5
    assert encoder.embeddings() == []


@pytest.mark.parametrize("size", [(33, 47), (20, 20), (9, 5)])
def test_unet_forward_and_backward_on_sizes_that_are_not_multiples_of_16(size):
    encoder = UNetEncoder(in_channels=4, topology=(8, 16, 32, 64))
    decoder = UNetDecoder(encoder.out_channels, num_classes=3)
    image = torch.randn(2, 4, *size, requires_grad=True)
    features = encoder({"all": image})
    assert [tuple(f.shape[-2:]) for f in features][0] == size
    logits = decoder(features, size)
    assert logits.shape == (2, 3, *size)
    logits.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is not None for p in encoder.parameters())


def test_unet_rejects_input_with_the_wrong_band_count():
    encoder = UNetEncoder(in_channels=4, topology=(8, 16, 32, 64))
    with pytest.raises(DataError, match=r"expects all input \(B, 4, H, W\), got \(1, 3, 16, 16\)"):
        encoder({"all": torch.randn(1, 3, 16, 16)})

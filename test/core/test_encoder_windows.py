"""Window layout, exact overlap averaging, one batched forward, and any batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official_reference import preprocess_image_size

from radseg_core.encoder import RADSegEncoder
from radseg_core.encoder.windows import crop_windows, snap_size, stitch_windows, window_grid
from radseg_core.model import load_radio
from radseg_core.text import TextEmbedder


@pytest.fixture(scope="module")
def encoder():
    loaded = load_radio("random-tiny")
    return RADSegEncoder(loaded, TextEmbedder(loaded.text), crop=64, stride=32)


@pytest.mark.parametrize(
    ("hw", "expected"),
    [((480, 640), (480, 640)), ((100, 150), (96, 144)), ((7, 9), (16, 16)), ((24, 40), (32, 48))],
)
def test_snap_size_rounds_to_nearest_multiple_of_16(hw, expected):
    assert snap_size(*hw) == expected
    assert all(s % 16 == 0 for s in snap_size(*hw))


def test_grid_layout_matches_reference_slide_rule():
    g = window_grid(480, 640, 336, 224)
    assert (g.ch, g.cw) == (336, 336)
    assert sorted({y for y, _ in g.boxes}) == [0, 144]  # second row shifted back to end at the border
    assert sorted({x for _, x in g.boxes}) == [0, 224, 304]
    assert g.num == 6 and g.grid == (30, 40)
    cover = np.zeros((480, 640), int)
    for y, x in g.boxes:
        assert y + g.ch <= 480 and x + g.cw <= 640
        cover[y : y + g.ch, x : x + g.cw] += 1
    assert cover.min() >= 1


def test_small_image_uses_one_window_of_its_own_size():
    g = window_grid(160, 208, 336, 224)
    assert g.boxes == ((0, 0),) and (g.ch, g.cw) == (160, 208)
    g = window_grid(160, 800, 336, 224)  # short side below the crop: windows are 160 x 336
    assert (g.ch, g.cw) == (160, 336) and g.num == 4


def test_invalid_sizes_raise():
    with pytest.raises(ValueError):
        window_grid(100, 160, 336, 224)
    with pytest.raises(ValueError):
        window_grid(160, 160, 100, 224)


def test_stitch_averages_overlaps_exactly():
    g = window_grid(96, 128, 64, 32)
    values = torch.arange(2 * g.num, dtype=torch.float32) * 1.37 + 0.1
    feats = values.view(-1, 1, 1, 1).expand(-1, 3, 4, 4).contiguous()  # window i is constant values[i]
    out = stitch_windows(feats, g)
    expected = torch.zeros(2, 6, 8)
    count = torch.zeros(6, 8)
    for i, (y, x) in enumerate(g.boxes):
        for b in range(2):
            expected[b, y // 16 : y // 16 + 4, x // 16 : x // 16 + 4] += values[b * g.num + i]
        count[y // 16 : y // 16 + 4, x // 16 : x // 16 + 4] += 1
    expected = expected / count
    assert torch.equal(out[:, 0], expected) or torch.allclose(out[:, 0], expected, atol=0, rtol=1e-7)


def test_crop_then_stitch_is_identity_for_consistent_windows():
    g = window_grid(80, 112, 48, 32)
    full = torch.randn(2, 5, 5, 7)  # a global 1/16 map
    images = full.repeat_interleave(16, -1).repeat_interleave(16, -2)  # (2, 5, 80, 112)
    crops = crop_windows(images, g)
    assert crops.shape == (2 * g.num, 5, 48, 48)
    window_maps = crops[:, :, ::16, ::16]
    torch.testing.assert_close(stitch_windows(window_maps, g), full)


def test_all_windows_of_all_images_go_through_one_forward(encoder):
    calls = []
    hook = encoder.model.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape)))
    try:
        out = encoder.encode_features(torch.rand(3, 3, 96, 128))
    finally:
        hook.remove()
    g = encoder.grid(96, 128)
    assert calls == [(3 * g.num, 3, 64, 64)]
    assert out.shape == (3, encoder.feature_dim, 6, 8)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_any_batch_size_equals_per_image(encoder, batch):
    x = torch.rand(batch, 3, 80, 112)
    together = encoder.encode_features(x)
    alone = torch.stack([encoder.encode_features(x[i]) for i in range(batch)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_windows_equal_plain_reference_loop(encoder):
    """Stitched map == explicit per-window model calls averaged in a loop (SCGA off)."""
    encoder.scga_enabled = False
    try:
        x = torch.rand(1, 3, 96, 112)
        got = encoder.encode_features(x)
        total, count = torch.zeros(1, encoder.feature_dim, 6, 7), torch.zeros(1, 1, 6, 7)
        with torch.no_grad():
            for y0 in (0, 32):
                for x0 in (0, 32, 48):
                    f = encoder.model(x[:, :, y0 : y0 + 64, x0 : x0 + 64]).features  # (1, 16, C)
                    total[:, :, y0 // 16 : y0 // 16 + 4, x0 // 16 : x0 // 16 + 4] += f.transpose(
                        1, 2
                    ).reshape(1, -1, 4, 4)
                    count[:, :, y0 // 16 : y0 // 16 + 4, x0 // 16 : x0 // 16 + 4] += 1
        torch.testing.assert_close(got, total / count, atol=1e-5, rtol=1e-5)
    finally:
        encoder.scga_enabled = True


def test_chunked_forward_gives_same_features(encoder):
    x = torch.rand(2, 3, 96, 128)
    full = encoder.encode_features(x)
    encoder.max_windows_per_forward = 4
    try:
        torch.testing.assert_close(encoder.encode_features(x), full, atol=1e-5, rtol=1e-5)
    finally:
        encoder.max_windows_per_forward = None


def test_non_multiple_sizes_are_resized_to_multiples_of_16(encoder):
    img = (np.random.default_rng(0).random((100, 150, 3)) * 255).astype(np.uint8)
    assert encoder.encode_features(img).shape[-2:] == (6, 9)


def test_crop_zero_means_one_whole_image_forward():
    loaded = load_radio("random-tiny")
    enc = RADSegEncoder(loaded, TextEmbedder(loaded.text), crop=0, scga=False)
    x = torch.rand(2, 3, 48, 80)
    assert window_grid(48, 80, 0, 224).boxes == ((0, 0),)
    with torch.no_grad():
        ref = loaded.model(x).features.transpose(1, 2).reshape(2, -1, 3, 5)
    torch.testing.assert_close(enc.encode_features(x), ref)


@pytest.mark.parametrize(("hw", "stride", "crop", "expected", "windows"), [
    ((576, 768), 224, 336, (672, 896), 12),  # ADE / Context mid (500x375 resized): ours was 576x768, 9 windows
    ((688, 1376), 224, 336, (896, 1568), 28),  # Cityscapes mid: ours was 688x1376, 18 windows
    ((640, 1136), 112, 336, (784, 1232), 45),  # Replica 3D: ours was 640x1136, 36 windows
    ((640, 864), 112, 336, (672, 896), 24),  # ScanNet 3D
    ((336, 448), 112, 336, (336, 448), 2),  # VOC mid 500x375: already multiples of the stride
    ((112, 160), 112, 224, (224, 224), 1),  # smaller than the crop: raised to it
    ((112, 224), 112, 224, (112, 224), 1),  # multiples of the stride are kept even below the crop
])
def test_stride_size_is_preprocess_image(hw, stride, crop, expected, windows):
    from radseg_core.encoder.windows import stride_size

    assert stride_size(*hw, stride, crop) == expected == preprocess_image_size(*hw, stride, crop)
    assert window_grid(*expected, crop, stride).num == windows


def test_stride_size_equals_the_reference_on_many_sizes():
    from radseg_core.encoder.windows import stride_size

    rng = np.random.default_rng(0)
    for h, w in rng.integers(100, 2100, (400, 2)):
        for stride, crop in ((112, 224), (112, 336), (224, 336)):
            assert stride_size(int(h), int(w), stride, crop) == preprocess_image_size(int(h), int(w), stride, crop)


def test_input_sizing_official_feeds_the_reference_size(encoder):
    loaded = load_radio("random-tiny")
    official = RADSegEncoder(loaded, TextEmbedder(loaded.text), crop=64, stride=32, input_sizing="official")
    img = (np.random.default_rng(0).random((60, 100, 3)) * 255).astype(np.uint8)
    assert official.input_size(60, 100) == (96, 128) == preprocess_image_size(60, 100, 32, 64)
    assert encoder.input_size(60, 100) == (64, 96)  # snap16
    assert official.encode_features(img).shape[-2:] == (6, 8)
    assert encoder.encode_features(img).shape[-2:] == (4, 6)
    with pytest.raises(ValueError, match="input_sizing"):
        RADSegEncoder(loaded, TextEmbedder(loaded.text), crop=64, stride=32, input_sizing="stride")

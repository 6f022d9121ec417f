"""RADSegEncoder end to end on a tiny random RADIO: alignment, probabilities, prediction semantics.

Random weights: these tests pin the math and the contracts, never semantic quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radseg_core.encoder import RADSegEncoder, SegmentationResult, build_encoder
from radseg_core.encoder.scga import scga
from radseg_core.model import load_radio
from radseg_core.text import TextEmbedder


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("random-tiny", crop=64, stride=32)


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(1).random((60, 100, 3)) * 255).astype(np.uint8)


def test_public_properties(encoder):
    assert encoder.feature_dim == 32 and encoder.language_dim == 24
    assert encoder.model_name == "random-tiny"


def test_align_is_normalised_summary_head(encoder):
    feats = torch.randn(5, 7, encoder.feature_dim)
    got = encoder.align(feats)
    with torch.no_grad():
        ref = encoder.lang_adaptor.head_mlp(feats.reshape(-1, encoder.feature_dim))
    torch.testing.assert_close(got, F.normalize(ref, dim=-1).reshape(5, 7, -1))
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(5, 7))
    fmap = torch.randn(2, encoder.feature_dim, 3, 4)
    torch.testing.assert_close(
        encoder.align_map(fmap), got_map := encoder.align(fmap.movedim(1, -1)).movedim(-1, 1)
    )
    assert got_map.shape == (2, encoder.language_dim, 3, 4)
    torch.testing.assert_close(encoder.align(feats, chunk=4), got)  # chunked rows, same result
    with pytest.raises(ValueError):
        encoder.align(torch.randn(3, encoder.feature_dim + 1))


def test_encode_text_normalised_and_cached(encoder):
    a = encoder.encode_text(["chair", "table"])
    assert a.shape == (2, encoder.language_dim)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2))
    calls = encoder.text.calls
    b = encoder.encode_text(["table", "chair"])
    torch.testing.assert_close(b, a.flip(0))
    assert encoder.text.calls == calls  # no second pass through the text tower


def test_class_probs_reference_formula(encoder):
    aligned = F.normalize(torch.randn(1, encoder.language_dim, 3, 5), dim=1)
    text = torch.randn(4, encoder.language_dim)
    got = encoder.class_probs(aligned, text)
    pix = aligned[0].flatten(1).T  # (15, D)
    cos = (pix / pix.norm(dim=1, keepdim=True)) @ (text / text.norm(dim=1, keepdim=True)).T
    ref = torch.softmax(100 * cos, dim=-1).T.reshape(1, 4, 3, 5)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(got.sum(1), torch.ones(1, 3, 5))


def test_postprocess_denoising_threshold_and_ignore(encoder):
    probs = torch.zeros(1, 3, 2, 2)
    probs[0, 0] = torch.tensor([[0.9, 0.2], [0.3, 0.2]])  # max 0.9: kept
    probs[0, 1] = torch.tensor([[0.05, 0.4], [0.3, 0.45]])  # max 0.45 < 0.5: denoised to 0
    probs[0, 2] = torch.tensor([[0.05, 0.4], [0.4, 0.35]])  # max 0.4: denoised
    p, labels, scores = encoder.postprocess(probs, (2, 2))
    assert torch.all(p[0, 1:] == 0)
    # pixels where class 0 survives get label 1; nothing survives nowhere here since class 0 > 0 everywhere
    assert labels.tolist() == [[[1, 1], [1, 1]]]
    probs[0, 0, 1, 1] = 0.0  # now that pixel has no surviving class -> ignore (0)
    _, labels, _ = encoder.postprocess(probs, (2, 2))
    assert labels[0, 1, 1] == 0 and labels[0, 0, 0] == 1
    old = encoder.prediction_thresh
    encoder.prediction_thresh = 0.5
    try:
        _, labels, scores = encoder.postprocess(probs, (2, 2))
    finally:
        encoder.prediction_thresh = old
    assert labels[0].tolist() == [[1, 0], [0, 0]]
    torch.testing.assert_close(scores[0], torch.tensor([[0.9, 0.2], [0.3, 0.0]]))


def test_predict_shapes_and_label_semantics(encoder, image):
    res = encoder.predict(image, ["wall", "floor", "chair"])
    assert isinstance(res, SegmentationResult)
    assert res.probs.shape == (3, 60, 100) and res.labels.shape == (60, 100)
    assert res.labels.dtype == torch.int64 and res.labels.min() >= 0 and res.labels.max() <= 3
    assert res.label_names == ["", "wall", "floor", "chair"]
    nonzero = res.labels > 0
    picked = res.probs.argmax(0) + 1
    assert torch.equal(res.labels[nonzero], picked[nonzero])
    batch = encoder.predict(
        torch.from_numpy(image).permute(2, 0, 1)[None].repeat(2, 1, 1, 1), ["wall", "floor"]
    )
    assert batch.probs.shape == (2, 2, 60, 100) and batch.labels.shape == (2, 60, 100)


def test_predict_equals_plain_reference_pipeline(encoder, image):
    """Composition written out plainly: snapped image, window loop, SCGA, head_mlp, 100-cos softmax."""
    names = ["a", "b"]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    xs = F.interpolate(x, size=(64, 96), mode="bilinear", align_corners=False)  # 60x100 -> 64x96
    total, count = torch.zeros(1, 32, 4, 6), torch.zeros(1, 1, 4, 6)
    with torch.no_grad():
        for x0 in (0, 32):
            f = encoder.model(xs[:, :, :, x0 : x0 + 64]).features.transpose(1, 2).reshape(1, 32, 4, 4)
            total[..., x0 // 16 : x0 // 16 + 4] += f
            count[..., x0 // 16 : x0 // 16 + 4] += 1
        fmap = scga(total / count, 10.0)
        lang = F.normalize(encoder.lang_adaptor.head_mlp(fmap.flatten(2).transpose(1, 2)), dim=-1)
    text = encoder.encode_text(names)
    probs = torch.softmax(100 * lang @ text.T, dim=-1).transpose(1, 2).reshape(1, 2, 4, 6)
    probs = F.interpolate(probs, size=(60, 100), mode="bilinear", align_corners=False)
    probs[probs.amax(dim=(2, 3)) < 0.5] = 0
    res = encoder.predict(image, names)
    torch.testing.assert_close(res.probs, probs[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(encoder.encode_features(image), fmap[0], atol=1e-5, rtol=1e-5)


def test_numpy_and_tensor_inputs_agree(encoder, image):
    a = encoder.encode_features(image)
    b = encoder.encode_features(torch.from_numpy(image).permute(2, 0, 1))
    c = encoder.encode_features(torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)[0]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_bad_inputs_raise(encoder):
    with pytest.raises(ValueError):
        encoder.encode_features(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        encoder.encode_features(torch.zeros(1, 4, 32, 32))
    with pytest.raises(TypeError):
        encoder.encode_features([1, 2, 3])
    with pytest.raises(ValueError):
        encoder.predict(np.zeros((32, 32, 3), np.uint8), [])
    with pytest.raises(ValueError):
        RADSegEncoder(load_radio("random-tiny"), encoder.text, crop=100)


def test_scra_and_scga_switches_change_features(image):
    loaded = load_radio("random-tiny")
    text = TextEmbedder(loaded.text)
    full = RADSegEncoder(loaded, text, crop=64, stride=32).encode_features(image)
    no_scga = RADSegEncoder(loaded, text, crop=64, stride=32, scga=False).encode_features(image)
    other = load_radio("random-tiny")  # SCRA lives in the model: a different setting needs its own copy
    no_scra = RADSegEncoder(other, text, crop=64, stride=32, scra=False, scga=False).encode_features(image)
    assert not torch.allclose(full, no_scga, atol=1e-4)
    assert not torch.allclose(no_scga, no_scra, atol=1e-4)


def test_second_encoder_cannot_change_the_first_ones_scra(image):
    loaded = load_radio("random-tiny")
    text = TextEmbedder(loaded.text)
    first = RADSegEncoder(loaded, text, crop=64, stride=32)
    before = first.encode_features(image)
    with pytest.raises(ValueError, match="shared with another RADSegEncoder that uses SCRA on"):
        RADSegEncoder(loaded, text, crop=64, stride=32, scra=False)
    with pytest.raises(ValueError, match="scaling 10.0"):
        RADSegEncoder(loaded, text, crop=64, stride=32, scra_scaling=3.0)
    same = RADSegEncoder(loaded, text, crop=64, stride=32, scga=False)  # same SCRA: sharing is fine
    assert same.scra_enabled and first.scra_enabled
    torch.testing.assert_close(first.encode_features(image), before)
    with pytest.raises(ValueError, match="shared"):
        first.set_scra(False)  # would change `same`'s output
    del same
    import gc

    gc.collect()
    first.set_scra(False)  # sole owner now: allowed
    assert not first.scra_enabled


def test_float_images_outside_unit_range_are_refused(encoder):
    img = torch.rand(3, 32, 48)
    encoder.encode_features(img)
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255"):
        encoder.encode_features(img * 255)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoder.encode_features(img - 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoder.encode_features(torch.full((3, 32, 32), float("nan")))
    with pytest.raises(TypeError, match="uint8"):
        encoder.encode_features(torch.zeros(3, 32, 32, dtype=torch.int32))


def test_bf16_autocast_close_to_fp32(image):
    loaded = load_radio("random-tiny")
    text = TextEmbedder(loaded.text)
    ref = RADSegEncoder(loaded, text, crop=64, stride=32).encode_features(image)
    low = RADSegEncoder(loaded, text, crop=64, stride=32, autocast_dtype=torch.bfloat16).encode_features(
        image
    )
    assert low.dtype == torch.float32 and low.shape == ref.shape
    cos = F.cosine_similarity(low.flatten(1), ref.flatten(1), dim=0)
    assert cos.mean() > 0.98


def test_bf16_that_overflows_falls_back_to_float32_with_a_reason(image):
    from radseg_core.model.tiny import build_random_tiny

    model = build_random_tiny()
    enc = build_encoder(build_random_tiny(), crop=64, stride=32, dtype=torch.bfloat16)
    assert enc.autocast_dtype == torch.bfloat16 and enc.autocast_fallback is None  # finite: kept

    def overflow(module, inputs, out):  # what an fp16/bf16 overflow looks like downstream
        return out * float("inf") if out.dtype == torch.bfloat16 else out

    model.model.blocks[0].mlp.fc1.register_forward_hook(overflow)  # a Linear: bf16 under autocast
    with pytest.warns(RuntimeWarning, match="bfloat16 autocast gave non-finite features.*float32"):
        enc = build_encoder(model, crop=64, stride=32, dtype=torch.bfloat16)
    assert enc.autocast_dtype is None and "float32" in enc.autocast_fallback
    assert torch.isfinite(enc.encode_features(image)).all()


def test_predict_at_another_size_upsamples_once_from_the_feature_grid(encoder, image):
    """The 2D benchmarks' rule (RADSeg ``encode_image_to_feat_map(img, orig_img_size)``): probabilities
    go straight from the feature grid to the output size; prompt denoising and labels happen there."""
    names = ["wall", "floor", "chair"]
    res = encoder.predict(image, names, size=(75, 125))
    assert res.probs.shape == (3, 75, 125) and res.labels.shape == (75, 125)
    feats = encoder.aggregate(encoder.window_features(encoder.snap(encoder.to_batch(image)[0])))
    coarse = encoder.class_probs(encoder.align_map(feats), encoder.encode_text(names))
    ref = F.interpolate(coarse, size=(75, 125), mode="bilinear", align_corners=False)[0]
    ref[ref.amax(dim=(1, 2)) < encoder.prompt_denoising] = 0
    torch.testing.assert_close(res.probs, ref)


def test_denoised_pixels_argmax_labels_them_class_one_as_the_reference():
    """Every class denoised away: the reference's argmax over zeros gives class index 0 (label 1) with no
    threshold; ``denoised_pixels="ignore"`` (ours, default) gives 0."""
    probs = torch.full((1, 3, 4, 5), 0.3)  # every class below 0.5 everywhere: all denoised
    ours = build_encoder("random-tiny", crop=64, stride=32)
    official = build_encoder("random-tiny", crop=64, stride=32, denoised_pixels="argmax")
    assert (ours.postprocess(probs, (4, 5))[1] == 0).all()
    p, labels, _ = official.postprocess(probs, (4, 5))
    assert (p == 0).all() and (labels == 1).all()
    official.prediction_thresh = 0.1  # a prediction threshold still applies (strictly below it: 0)
    assert (official.postprocess(probs, (4, 5))[1] == 0).all()
    with pytest.raises(ValueError, match="denoised_pixels"):
        build_encoder("random-tiny", crop=64, stride=32, denoised_pixels="first")

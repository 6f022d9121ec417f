"""RADIO-SAM prompt generation and merging, with a fake SAM decoder (segment_anything is optional)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radseg_core.encoder import build_encoder
from radseg_core.encoder.sam_refine import (
    RefineConfig,
    SamRefiner,
    connected_components,
    load_sam_decoder,
    region_prompts,
)


def test_connected_components_8_connectivity():
    m = torch.zeros(6, 7, dtype=torch.bool)
    m[0, 0] = m[1, 1] = True  # diagonal neighbours: one component
    m[4:6, 4:7] = True
    m[0, 6] = True
    labels, n = connected_components(m)
    assert n == 3
    assert labels[0, 0] == labels[1, 1] != 0
    assert len({int(labels[0, 0]), int(labels[4, 4]), int(labels[0, 6])}) == 3
    assert torch.all((labels == 0) == ~m)


def test_region_prompts_points_boxes_and_area_filter():
    probs = torch.full((2, 10, 12), 0.05)
    pred = torch.zeros(10, 12, dtype=torch.long)
    pred[2:6, 3:8] = 1  # 20-pixel class-1 region
    pred[8:10, 0:2] = 1  # 4-pixel region: dropped by minimal_area
    probs[1][pred == 1] = 0.6
    probs[1, 4, 6] = 0.95  # its peak
    probs[0][pred == 0] = 0.7
    regions = region_prompts(pred, probs, coarse_thresh=0.1, minimal_area=5)
    r1 = [r for r in regions if r.cls == 1]
    assert len(r1) == 1
    assert r1[0].box.tolist() == [3, 2, 7, 5]  # x0 y0 x1 y1 inclusive
    assert r1[0].point.tolist() == [6, 4]  # x y of the peak
    assert int(r1[0].mask.sum()) == 20
    assert [r.cls for r in regions].count(0) == 1  # background class: one connected region


def test_region_prompts_skip_low_confidence_pixels():
    probs = torch.full((1, 8, 8), 0.05)
    pred = torch.zeros(8, 8, dtype=torch.long)
    assert region_prompts(pred, probs, coarse_thresh=0.1, minimal_area=1) == []


class BoxDecoder:
    """Fake SAM: mask = the prompt box (in the 1024 frame, at 256 resolution), fixed IoU per call."""

    mask_threshold = 0.0

    def __init__(self, iou: float = 0.95) -> None:
        self.iou = iou
        self.calls = []

    def embed(self, feats):
        return feats

    def decode(self, embedding, points, point_labels, boxes, mask_input):
        self.calls.append((points.clone(), boxes.clone(), mask_input.shape))
        n = boxes.shape[0]
        low = torch.full((n, 1, 256, 256), -20.0)
        for i, (x0, y0, x1, y1) in enumerate((boxes / 4).tolist()):
            low[i, 0, int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1] = 20.0
        return low, torch.full((n, 1), self.iou)


def _coarse(h=64, w=96):
    probs = torch.zeros(2, h, w)
    probs[0] = 0.8
    probs[1, 16:48, 32:72] = 0.9
    probs[0, 16:48, 32:72] = 0.1
    return probs


def test_refine_with_fake_decoder_follows_masks():
    probs = _coarse()
    pred = probs.argmax(0)
    refiner = SamRefiner(BoxDecoder(), RefineConfig(minimal_area=4))
    embedding = torch.zeros(1, 8, 64, 64)
    new_probs, new_pred = refiner.refine(embedding, (1024 * 64 // 96, 1024), pred, probs)
    assert new_probs.shape == probs.shape and new_pred.shape == pred.shape
    # interior of the class-1 box stays class 1, far background stays class 0
    assert new_pred[30, 50] == 1 and new_pred[2, 2] == 0
    # refined probability = sigmoid(mask logit) * coarse probability inside the kept mask
    assert torch.isclose(new_probs[1, 30, 50], torch.sigmoid(torch.tensor(20.0)) * 0.9, atol=1e-3)
    assert all(call[2] == (1, 256, 256) for call in refiner.decoder.calls)  # the reference's 3-D prompt


def test_rejected_masks_fall_back_to_coarse_prediction():
    probs = _coarse()
    pred = probs.argmax(0)
    refiner = SamRefiner(BoxDecoder(iou=0.5), RefineConfig(minimal_area=4))  # every mask below iou_thresh
    new_probs, new_pred = refiner.refine(torch.zeros(1, 8, 64, 64), (683, 1024), pred, probs)
    assert torch.equal(new_pred, pred)
    assert torch.all(new_probs <= probs + 1e-6)


def test_predict_with_refinement_through_encoder():
    decoder = BoxDecoder()
    enc = build_encoder(
        "random-tiny",
        crop=64,
        stride=32,
        sam_refine=True,
        sam_refiner=SamRefiner(decoder, RefineConfig(minimal_area=4, coarse_thresh=0.0)),
    )
    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    emb, size = enc.sam_embedding(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    assert emb.shape == (1, 64, 64, 64) and size == (688, 1024)  # tiny sam adaptor: 64 channels
    assert torch.all(emb[..., 43:, :] == 0)  # zero padding below the 688 / 16 = 43 valid rows
    res = enc.predict(img, ["x", "y"])
    assert res.refined and res.labels.shape == (64, 96) and res.probs.shape == (2, 64, 96)
    assert decoder.calls  # the decoder was actually prompted


def test_sam_refine_needs_a_refiner_or_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="sam_checkpoint"):
        build_encoder("random-tiny", sam_refine=True)
    with pytest.raises((FileNotFoundError, ImportError), match="sam_vit_h|segment_anything"):
        load_sam_decoder(tmp_path / "sam_vit_h_4b8939.pth")


def test_sam_embedding_uses_sam_adaptor_on_whole_image():
    enc = build_encoder("random-tiny", crop=64, stride=32)
    img = torch.rand(3, 32, 48)
    emb, (nh, nw) = enc.sam_embedding(img, long_side=256)
    x = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False)
    with torch.no_grad():
        f = enc.model(x).features
        ref = enc.sam_adaptor.feat_mlp(f).transpose(1, 2).reshape(1, -1, nh // 16, nw // 16)
    torch.testing.assert_close(emb[..., : nh // 16, : nw // 16], ref, atol=1e-5, rtol=1e-5)


def test_segment_anything_wrapper_wiring():
    """SegmentAnythingDecoder feeds neck -> prompt encoder -> mask decoder like SamPredictor.predict_torch."""
    from radseg_core.encoder.sam_refine import SegmentAnythingDecoder

    class PromptEncoder(torch.nn.Module):
        def forward(self, points, boxes, masks):
            self.got = (points, boxes, masks)
            return torch.zeros(len(boxes), 3, 4), torch.ones(len(boxes), 4, 2, 2)

        def get_dense_pe(self):
            return torch.full((1, 4, 2, 2), 7.0)

    class MaskDec(torch.nn.Module):
        def forward(
            self,
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            multimask_output,
        ):
            assert not multimask_output and image_pe[0, 0, 0, 0] == 7.0
            n = sparse_prompt_embeddings.shape[0]
            return image_embeddings.sum() + torch.zeros(n, 1, 256, 256), torch.full((n, 1), 0.5)

    sam = torch.nn.Module()
    sam.image_encoder = torch.nn.Module()
    sam.image_encoder.neck = torch.nn.Conv2d(6, 4, 1)
    sam.prompt_encoder, sam.mask_decoder = PromptEncoder(), MaskDec()
    dec = SegmentAnythingDecoder(sam)
    emb = dec.embed(torch.randn(1, 6, 64, 64))
    assert emb.shape == (1, 4, 64, 64)
    pts, boxes = torch.rand(2, 1, 2), torch.rand(2, 4)
    low, iou = dec.decode(emb, pts, torch.ones(2, 1), boxes, torch.zeros(2, 1, 256, 256))
    assert low.shape == (2, 1, 256, 256) and iou.shape == (2, 1)
    assert sam.prompt_encoder.got[0][0] is pts and sam.prompt_encoder.got[1] is boxes


def _reference_mask_prompt(probs: torch.Tensor, c: int, coarse_thresh: float, coeff: float) -> torch.Tensor:
    """RADSeg's sam_utils.sam_refinement, step by step: downsample 2x, resize to long side 256 with SAM's
    get_preprocess_shape of the image size, pad to 256 x 256, keep coeff * p where p > coarse_thresh;
    the result stays 3-D (1, 256, 256)."""
    h, w = probs.shape[-2:]
    down = F.interpolate(probs[None], [h // 2, w // 2], mode="bilinear", align_corners=False)[0]
    scale = 256 / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    r = F.interpolate(down[c][None][None], [new_h, new_w], mode="bilinear", align_corners=False).squeeze(0)
    r = F.pad(r, (0, 256 - new_w, 0, 256 - new_h), mode="constant", value=0)
    return torch.where(r > coarse_thresh, coeff * r, torch.tensor(0.0)).float()


def _recording_sam(monkeypatch=None):
    """SAM's real PromptEncoder (random LayerNorm affine) + a mask decoder that records its dense prompt."""
    sa = pytest.importorskip("segment_anything")
    from radseg_core.encoder.sam_refine import SegmentAnythingDecoder

    torch.manual_seed(0)
    prompt = sa.modeling.PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16
    )
    for m in prompt.mask_downscaling:
        if hasattr(m, "weight") and m.weight.ndim == 1:  # LayerNorm2d: make its affine part matter
            torch.nn.init.normal_(m.weight)
            torch.nn.init.normal_(m.bias)

    class Recorder(torch.nn.Module):
        def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                    multimask_output):
            self.dense = dense_prompt_embeddings
            n = sparse_prompt_embeddings.shape[0]
            return torch.full((n, 1, 256, 256), 10.0), torch.full((n, 1), 0.95)

    sam = torch.nn.Module()
    sam.image_encoder = torch.nn.Module()
    sam.image_encoder.neck = torch.nn.Identity()
    sam.prompt_encoder, sam.mask_decoder = prompt, Recorder()
    return SegmentAnythingDecoder(sam)


def test_dense_mask_prompt_equals_the_references():
    """The dense prompt reaching SAM's mask decoder is the one RADSeg's reference computes."""
    decoder = _recording_sam()
    probs = torch.zeros(2, 64, 96)
    probs[0] = 0.8
    probs[1, 16:48, 32:72] = 0.9
    probs[0, 16:48, 32:72] = 0.1
    cfg = RefineConfig(minimal_area=4)
    SamRefiner(decoder, cfg).refine(torch.zeros(1, 256, 64, 64), (683, 1024), probs.argmax(0), probs)
    got = decoder.mask_decoder.dense  # from the last class prompted (class 1)
    mask = _reference_mask_prompt(probs, 1, cfg.coarse_thresh, cfg.mask_coeff)
    assert mask.shape == (1, 256, 256)
    with torch.no_grad():
        ref = decoder.prompt_encoder(points=None, boxes=torch.zeros(1, 4), masks=mask)[1]
    assert ref.shape == (256, 64, 64)  # unbatched: broadcast over every prompt of the class
    torch.testing.assert_close(got, ref)
    # SAM's documented 4-D layout normalises over channels and gives a different dense prompt
    SamRefiner(decoder, RefineConfig(minimal_area=4, mask_prompt="batched")).refine(
        torch.zeros(1, 256, 64, 64), (683, 1024), probs.argmax(0), probs
    )
    batched = decoder.mask_decoder.dense
    assert batched.shape[1:] == (256, 64, 64) and not torch.allclose(batched[0], ref, atol=1e-3)
    with pytest.raises(ValueError, match="mask_prompt"):
        RefineConfig(mask_prompt="4d")

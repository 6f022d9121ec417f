"""RADIO-SAM prompt generation and merging, with a fake SAM decoder (segment_anything is optional)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from official_reference import preprocess_sam_size

from radseg_core.encoder import build_encoder
from radseg_core.encoder.sam_refine import (
    RefineConfig,
    SamRefiner,
    connected_components,
    load_sam_decoder,
    region_prompts,
)


@pytest.mark.parametrize("seed", range(6))
def test_connected_components_scipy_and_torch_agree(seed):
    """SciPy's labelling (when installed) and the torch fallback give the same 8-connected partition."""
    from radseg_core.encoder.sam_refine import _propagate_components

    g = torch.Generator().manual_seed(seed)
    h, w = [(5, 7), (40, 60), (83, 125)][seed % 3]
    m = F.interpolate(torch.randn(1, 1, h // 4 + 1, w // 4 + 1, generator=g), (h, w), mode="bilinear")[0, 0] > 0.2
    if seed == 5:
        m = torch.rand(h, w, generator=g) > 0.6  # speckle: many small components, diagonal contacts
    a, na = connected_components(m)
    b, nb = _propagate_components(m)
    assert na == nb and torch.equal(a == 0, ~m) and torch.equal(b == 0, ~m)
    assert len(set(zip(a[m].tolist(), b[m].tolist(), strict=True))) == na  # one-to-one between labellings


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


def test_all_masks_rejected_returns_the_coarse_prediction_unchanged():
    """sam_refinement: ``if len(combined_boxes) == 0: return segmentations, None, seg_logits, ...``."""
    probs = _coarse()
    pred = probs.argmax(0)
    refiner = SamRefiner(BoxDecoder(iou=0.5), RefineConfig(minimal_area=4))  # every mask below iou_thresh
    new_probs, new_pred = refiner.refine(torch.zeros(1, 8, 64, 64), (683, 1024), pred, probs)
    assert torch.equal(new_pred, pred)
    assert torch.equal(new_probs, probs)  # not max(0, coarse x failed area): nothing zeroed


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
    # _preprocess_sam: int(64 * 64 / 96) * 16 = 672 rows (rounded down); tiny sam adaptor: 64 channels
    assert emb.shape == (1, 64, 64, 64) and size == (672, 1024)
    assert torch.all(emb[..., 42:, :] == 0) and not torch.all(emb[..., 41, :] == 0)  # padding below 42 rows
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


@pytest.mark.parametrize("hw", [(448, 672), (333, 500), (427, 640), (512, 683), (480, 640), (360, 640),
                                (640, 427), (64, 96)])
def test_sam_input_size_rounds_down_as_preprocess_sam(hw):
    enc = build_encoder("random-tiny", crop=64, stride=32)
    _, size = enc.sam_embedding(torch.rand(3, *hw))
    assert size == preprocess_sam_size(*hw)
    if hw == (448, 672):
        assert size == (672, 1024)  # nearest rounding gave 688


class _FailedRegionDecoder(BoxDecoder):
    """Class 0's mask (the first call) is rejected; class 1's mask is kept and covers the whole frame."""

    def decode(self, embedding, points, point_labels, boxes, mask_input):
        self.calls.append(1)
        n = boxes.shape[0]
        iou = 0.5 if len(self.calls) == 1 else 0.95
        return torch.full((n, 1, 256, 256), 20.0), torch.full((n, 1), iou)


def test_failed_region_keeps_the_refined_label_as_map_failed_regions_does():
    """map_failed_regions merges max(refined, coarse) probabilities over a rejected region but compares
    *after* merging, so its label fallback never fires: another class's kept mask wins there."""
    probs = torch.zeros(2, 40, 60)
    probs[0, :, :30], probs[1, :, :30] = 0.9, 0.1  # class 0 left (its mask is rejected)
    probs[0, :, 30:], probs[1, :, 30:] = 0.1, 0.9  # class 1 right (its mask covers everything)
    pred = probs.argmax(0)
    refiner = SamRefiner(_FailedRegionDecoder(), RefineConfig(minimal_area=4))
    new_probs, new_pred = refiner.refine(torch.zeros(1, 8, 64, 64), (683, 1024), pred, probs)
    assert (new_pred == 1).all()  # the refined argmax, also over class 0's failed region
    # probabilities: refined class 1 = sigmoid(20) * 0.1 on the left; class 0 = coarse 0.9 merged in there
    torch.testing.assert_close(new_probs[0, :, :30], torch.full((40, 30), 0.9))
    torch.testing.assert_close(new_probs[1, :, :30], torch.full((40, 30), 0.1 * torch.sigmoid(torch.tensor(20.0))))


def test_prompt_frames_official_and_exact():
    """official: points scaled by ResizeLongestSide.apply_coords_torch(p, (h/2, w/2)) to the long-side-1024
    frame of the downsampled prediction; exact: to the frame of the SAM input features."""
    probs = torch.zeros(2, 334, 500)
    probs[0] = 0.8
    probs[1, 100:250, 200:400] = 0.9
    probs[0, 100:250, 200:400] = 0.1
    pred = probs.argmax(0)
    sam_size = preprocess_sam_size(334, 500)  # (672, 1024)
    got = {}
    for frame in ("official", "exact"):
        dec = BoxDecoder()
        SamRefiner(dec, RefineConfig(minimal_area=4, prompt_frame=frame)).refine(
            torch.zeros(1, 8, 64, 64), sam_size, pred, probs)
        got[frame] = dec.calls[-1]  # class 1's prompts
    dh, dw = 167, 250
    official_hw = (int(dh * 1024 / dw + 0.5), 1024)  # get_preprocess_shape(167, 250, 1024) = (684, 1024)
    region_box = torch.tensor([100.0, 50.0, 199.0, 124.0])  # x0 y0 x1 y1 of class 1 at half resolution
    for frame, (fh, fw) in (("official", official_hw), ("exact", sam_size)):
        scale = torch.tensor([fw / dw, fh / dh, fw / dw, fh / dh])
        torch.testing.assert_close(got[frame][1][0], region_box * scale)
    assert not torch.allclose(got["official"][1], got["exact"][1])
    with pytest.raises(ValueError, match="prompt_frame"):
        RefineConfig(prompt_frame="sam")


def _official_sam_refinement(img_size, pred, probs, predictor, coarse_thresh, minimal_area, coeff, iou_thresh):
    """RADSeg's ``sam_utils.sam_refinement`` restated from its semantics (skimage 8-connected regions, SAM's
    own ResizeLongestSide and SamPredictor.predict_torch / Sam.postprocess_masks), 0-based labels."""
    from skimage import measure

    K = probs.shape[0]
    dh, dw = probs.shape[-2] // 2, probs.shape[-1] // 2
    pred_d = F.interpolate(pred[None, None].float(), [dh, dw], mode="nearest")[0, 0].long()
    probs_d = F.interpolate(probs[None], [dh, dw], mode="bilinear", align_corners=False)[0]
    if coarse_thresh > 0:
        pred_d[probs_d.max(0).values < coarse_thresh] = K  # background channel, never prompted
    regions, points, boxes = {}, {}, {}
    for c in range(K):
        if probs_d[c].max() < coarse_thresh:
            continue
        lab = measure.label((pred_d == c).numpy(), connectivity=2)
        for r in range(1, lab.max() + 1):
            m = torch.from_numpy(lab == r)
            if m.sum() < minimal_area:
                continue
            i = int(torch.argmax(probs_d[c] * m))
            ys, xs = torch.nonzero(m, as_tuple=True)
            regions.setdefault(c, []).append(m)
            points.setdefault(c, []).append(torch.tensor([i % dw, i // dw]))
            boxes.setdefault(c, []).append(torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float())
    tf = predictor.transform
    lows, failed, kept_cls = [], [], []
    for c in sorted(regions):
        nh, nw = tf.get_preprocess_shape(img_size[0], img_size[1], 256)
        r = F.interpolate(probs_d[c][None, None], [nh, nw], mode="bilinear", align_corners=False)[0]
        r = F.pad(r, (0, 256 - nw, 0, 256 - nh))
        r = torch.where(r > coarse_thresh, coeff * r, torch.tensor(0.0))
        b = tf.apply_boxes_torch(torch.stack(boxes[c]), [dh, dw])
        p = tf.apply_coords_torch(torch.stack(points[c]).float(), [dh, dw])[:, None]
        _, score, low = predictor.predict_torch(p, torch.ones(len(p), 1), boxes=b, mask_input=r,
                                                multimask_output=False)
        valid = score[:, 0] > iou_thresh
        failed += [m for m, v in zip(regions[c], valid.tolist(), strict=True) if not v]
        if valid.any():
            lows.append(low[valid])
            kept_cls += [c] * int(valid.sum())
    if not lows:
        return pred, probs
    logits = predictor.model.postprocess_masks(torch.cat(lows), predictor.input_size, predictor.original_size)
    masks = logits > predictor.model.mask_threshold
    refined = torch.zeros_like(probs)
    cls = torch.tensor(kept_cls)
    for c in cls.unique().tolist():
        sel = cls == c
        refined[c] = (logits[sel, 0].sigmoid() * probs[c]).max(0).values * masks[sel, 0].any(0)
    labels = torch.where(refined.sum(0) == 0, pred, refined.argmax(0))
    if failed:
        area = F.interpolate(torch.stack(failed)[None].float(), list(img_size), mode="nearest")[0].any(0)
        failed_logit = area * probs
        refined = torch.where(failed_logit > refined, failed_logit, refined)
        labels = torch.where(failed_logit.max(0).values > refined.max(0).values, pred, labels)  # never fires
    return labels, refined


def _random_sam():
    """A SAM with random weights (narrow): SAM's real prompt encoder, mask decoder and transforms."""
    from radseg_core.compat import patch_torchvision

    patch_torchvision()
    sa = pytest.importorskip("segment_anything")
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    d = 32  # SAM-H has 256; a narrow decoder keeps the test quick and exercises the same code
    sam = Sam(ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=16, depth=1, num_heads=1, out_chans=d),
              PromptEncoder(embed_dim=d, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                            mask_in_chans=16),
              MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=d,
                                                                                 mlp_dim=64, num_heads=2),
                          transformer_dim=d, iou_head_depth=3, iou_head_hidden_dim=d)).eval()
    return sa, sam


@pytest.mark.parametrize("hw", [(333, 500), (427, 640), (512, 683), (480, 640), (360, 640)])
def test_refinement_equals_the_official_code_path(hw):
    """RADSeg+ with one random SAM on both sides: our refiner against RADSeg's sam_refinement (restated
    above) on VOC / COCO / ADE / 4:3 / 16:9 sizes, SAM input sized as _preprocess_sam."""
    from radseg_core.encoder.sam_refine import SegmentAnythingDecoder

    sa, sam = _random_sam()
    h, w = hw
    g = torch.Generator().manual_seed(h * w)
    probs = torch.softmax(6 * F.interpolate(torch.randn(1, 3, 6, 8, generator=g), (h, w), mode="bilinear")[0], 0)
    probs[2] = 0.0  # one class removed by prompt denoising
    pred = probs.argmax(0)
    emb = torch.randn(1, 32, 64, 64, generator=g)
    sam_size = preprocess_sam_size(h, w)
    predictor = sa.SamPredictor(sam)
    predictor.features, predictor.is_image_set = emb, True
    predictor.original_size, predictor.input_size = (h, w), sam_size
    cfg = RefineConfig(coarse_thresh=0.2, minimal_area=225, iou_thresh=0.0)
    with torch.no_grad():
        ref_labels, ref_probs = _official_sam_refinement((h, w), pred, probs, predictor, cfg.coarse_thresh,
                                                         cfg.minimal_area, cfg.mask_coeff, cfg.iou_thresh)
        got_probs, got_labels = SamRefiner(SegmentAnythingDecoder(sam), cfg).refine(emb, sam_size, pred, probs)
        exact_probs, exact_labels = SamRefiner(SegmentAnythingDecoder(sam), replace(cfg, prompt_frame="exact")
                                               ).refine(emb, sam_size, pred, probs)
    assert not torch.equal(ref_labels, pred)  # the refinement did change labels here
    assert torch.equal(got_labels, ref_labels)
    torch.testing.assert_close(got_probs, ref_probs, atol=2e-6, rtol=0)
    if hw in ((480, 640), (360, 640)):  # the two frames coincide at 4:3 and 16:9
        assert torch.equal(exact_labels, ref_labels) and torch.equal(exact_probs, got_probs)


class _OneClassDecoder(BoxDecoder):
    """Keeps the masks of the first class it is asked about and rejects all later ones (one image)."""

    def decode(self, embedding, points, point_labels, boxes, mask_input):
        low, iou = super().decode(embedding, points, point_labels, boxes, mask_input)
        return low, torch.full_like(iou, 0.95 if len(self.calls) == 1 else 0.5)


def test_probability_map_never_integrates_zero_vectors_from_refinement():
    """Refined probabilities are 0 wherever no kept mask lies (as in the reference); the map gets the coarse
    probabilities there (the pixel's label is the coarse one too), never a zero vector."""
    from radseg_core.pipeline import MapperConfig, SemanticMapper
    from radseg_core.types import Frame

    refiner = SamRefiner(_OneClassDecoder(), RefineConfig(minimal_area=4, coarse_thresh=0.0))
    enc = build_encoder("random-tiny", crop=64, stride=32, sam_refine=True, sam_refiner=refiner,
                        prompt_denoising=0.0)
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, 48:] = 255  # two halves, so two classes each win somewhere
    res = enc.predict(img, ["x", "y"])
    empty = (res.probs == 0).all(dim=0)
    assert res.refined and empty.any() and not empty.all()  # refinement left zero vectors
    assert not (res.map_probs() == 0).all(dim=0).any()
    torch.testing.assert_close(res.map_probs()[:, empty], res.coarse_probs[:, empty])
    cfg = MapperConfig(model="random-tiny", device="cpu", mode="probabilities", classes=["x", "y"],
                       prompt_denoising=0.0, storage_dtype="float32", free_space_decay=0.0)
    mapper = SemanticMapper(cfg, encoder=enc)
    enc.sam_refiner = SamRefiner(_OneClassDecoder(), refiner.config)  # the same decisions again
    K = np.array([[50.0, 0, 47.5], [0, 50.0, 31.5], [0, 0, 1]])
    mapper.process(Frame(rgb=img, depth=np.full((64, 96), 2.0, np.float32), K=K, T_world_cam=np.eye(4),
                         stamp=0.0, frame_id="cam"))
    sums = mapper.map.values().float().sum(dim=1)
    floor = float(res.map_probs().sum(dim=0).min())  # each voxel averages pixels whose vectors sum to >= this
    assert len(sums) and floor > 0.5 and float(sums.min()) >= floor - 1e-5


def test_mapper_config_carries_radseg_plus_settings_to_the_refiner():
    from radseg_core.pipeline import MapperConfig, _refine_config

    assert _refine_config(MapperConfig()) is None
    cfg = _refine_config(MapperConfig(sam_refine=True, sam_coarse_thresh=0.05, sam_prompt_frame="exact"))
    assert (cfg.coarse_thresh, cfg.prompt_frame, cfg.iou_thresh) == (0.05, "exact", 0.9)

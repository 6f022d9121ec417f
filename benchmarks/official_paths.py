"""How much the official code paths change time and labels (random weights: never quality).

1. ``input_sizing``: ``snap16`` (nearest multiples of 16) against ``official`` (RADSeg's _preprocess_image:
   up to multiples of the window stride, at least the crop) on the sample scene (Motorcycle, 432x640,
   crop 336 / stride 224 as the node's defaults): encoder input size, windows, median ``predict`` time per
   frame, and the share of pixels whose label is the same under both.
2. ``sam_prompt_frame``: RADSeg+ prompts scaled as RADSeg's ``sam_refinement`` (``official``) or to the SAM
   input's own frame (``exact``), on the sample scene and on generated images of the 2D benchmarks' sizes
   (VOC 375x500 / 500x333, COCO 427x640, ADE 512x683, 4:3 480x640, 16:9 360x640) run as ``radseg-eval 2d``
   runs them (mmseg resize to the VOC mid preset's scale, labels at the original size): share of pixels
   whose label differs. RADIO is ``random-base`` (C-RADIOv3-B's shapes), SAM a random SAM-H neck, prompt
   encoder and mask decoder (segment_anything's classes); ``iou_thresh`` is -1 (every mask kept): a random
   decoder's IoU estimates sit near 0, so 0.9 would reject every mask and leave nothing to compare.

Both parts use the same random models on both sides, so the numbers measure how far the two choices
move labels of an untrained model; with real weights the label changes are expected to be smaller or
larger, this cannot tell. Example (CPU, ~10 minutes on 2 shared cores):
    python benchmarks/official_paths.py --frames 4 --out docs/bench/official_paths_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radseg_core.compat import patch_torchvision  # noqa: E402
from radseg_core.datasets import MotorcycleSample  # noqa: E402
from radseg_core.encoder import build_encoder  # noqa: E402
from radseg_core.encoder.sam_refine import RefineConfig, SamRefiner, SegmentAnythingDecoder  # noqa: E402
from radseg_core.eval_bench import PRESETS_2D, resize_like_mmseg  # noqa: E402

CLASSES = ["floor", "wall", "chair", "table", "person", "motorcycle", "plant", "window"]
SIZES_2D = [(375, 500), (500, 333), (427, 640), (512, 683), (480, 640), (360, 640)]


def random_sam_h(in_dim: int = 1280, seed: int = 0):
    """SAM-H's neck (``in_dim`` = 1280 -> 256), prompt encoder and mask decoder with random weights; a
    one-block stand-in for the image encoder, which RADSeg+ never runs."""
    patch_torchvision()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    image = ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=in_dim, depth=1, num_heads=16, out_chans=256)
    prompt = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                           mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                                                                  mlp_dim=2048, num_heads=8),
                          transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    return Sam(image, prompt, decoder).eval()


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """A generated photo-like image: smooth colour regions with a few rectangles and noise."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (4, 6, 3)).astype(np.float32)
    import cv2

    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(5):
        y, x = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
        img[y : y + h // 4, x : x + w // 4] = rng.integers(0, 256, 3)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, out


def input_sizing(args) -> dict:
    frames = [MotorcycleSample()[i] for i in range(0, 16, max(1, 16 // args.frames))][: args.frames]
    out = {}
    labels = {}
    for sizing in ("snap16", "official"):
        enc = build_encoder(args.model, crop=336, stride=224, input_sizing=sizing)
        enc.encode_text(CLASSES)
        h, w = frames[0].rgb.shape[:2]
        ih, iw = enc.input_size(h, w)
        ms, labs = [], []
        for f in frames:
            t, res = timed(lambda f=f, enc=enc: enc.predict(f.rgb, CLASSES), args.repeats)
            ms.append(t)
            labs.append(res.labels)
        labels[sizing] = labs
        out[sizing] = {"image": [h, w], "encoder_input": [ih, iw], "windows": enc.grid(ih, iw).num,
                       "predict_ms_median": statistics.median(ms)}
    same = [float((a == b).float().mean()) for a, b in zip(labels["snap16"], labels["official"], strict=True)]
    out["label_agreement"] = statistics.mean(same)
    out["official_over_snap16_time"] = out["official"]["predict_ms_median"] / out["snap16"]["predict_ms_median"]
    return out


def prompt_frames(args) -> dict:
    probe = build_encoder(args.model, crop=336, stride=224)
    sam = random_sam_h(in_dim=probe.sam_embedding(torch.rand(3, 32, 32), 64)[0].shape[1])
    enc = build_encoder(args.model, crop=336, stride=224, input_sizing="official", denoised_pixels="argmax",
                        sam_refine=True, sam_refiner=SamRefiner(SegmentAnythingDecoder(sam)))
    enc.encode_text(CLASSES)
    cfg = RefineConfig(iou_thresh=-1.0, coarse_thresh=0.2)
    cases = [("sample", f.rgb, f.rgb.shape[:2]) for f in
             [MotorcycleSample()[i] for i in range(0, 16, max(1, 16 // args.frames))][: args.frames]]
    scale = PRESETS_2D["mid"]["voc"].scale
    cases += [(f"{h}x{w}", resize_like_mmseg(textured(h, w, i), scale), (h, w)) for i, (h, w) in enumerate(SIZES_2D)]
    rows = []
    for name, img, size in cases:
        labels = {}
        for frame in ("official", "exact"):
            enc.sam_refiner = SamRefiner(SegmentAnythingDecoder(sam), replace(cfg, prompt_frame=frame))
            with torch.no_grad():
                res = enc.predict(img, CLASSES, size=size)
            labels[frame] = res.labels
            coarse = res.coarse_probs.argmax(0) + 1
        rows.append({"case": name, "size": list(size),
                     "refined_vs_coarse": float((labels["official"] != coarse).float().mean()),
                     "official_vs_exact": float((labels["official"] != labels["exact"]).float().mean())})
    return {"iou_thresh": cfg.iou_thresh, "coarse_thresh": cfg.coarse_thresh, "cases": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random-base")
    p.add_argument("--frames", type=int, default=4, help="sample-scene frames per part")
    p.add_argument("--repeats", type=int, default=1, help="timed predict calls per frame (median)")
    p.add_argument("--parts", default="sizing,frames")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("RADSEG_BENCH_THREADS", torch.get_num_threads())))
    result = {"machine": f"{platform.machine()} {os.cpu_count()} cpus (shared VM), torch {torch.__version__}",
              "model": args.model, "random_weights": True}
    parts = args.parts.split(",")
    if "sizing" in parts:
        r = result["input_sizing"] = input_sizing(args)
        print(f"{'sizing':<9} {'image':>9} {'encoder in':>11} {'windows':>8} {'predict ms':>11}")
        for s in ("snap16", "official"):
            q = r[s]
            print(f"{s:<9} {q['image'][1]:>4}x{q['image'][0]:<4} {q['encoder_input'][1]:>6}x{q['encoder_input'][0]:<4}"
                  f" {q['windows']:>8} {q['predict_ms_median']:>11.0f}")
        print(f"official / snap16 time: {r['official_over_snap16_time']:.2f}x; labels equal on "
              f"{100 * r['label_agreement']:.2f} % of pixels (random weights)\n")
    if "frames" in parts:
        r = result["sam_prompt_frame"] = prompt_frames(args)
        print(f"{'case':<9} {'size':>9} {'refined != coarse %':>20} {'official != exact %':>20}")
        for c in r["cases"]:
            print(f"{c['case']:<9} {c['size'][1]:>4}x{c['size'][0]:<4} {100 * c['refined_vs_coarse']:>20.3f} "
                  f"{100 * c['official_vs_exact']:>20.3f}")
        print(f"({args.model} RADIO and a random SAM-H decoder, iou_thresh -1: sensitivity, not quality)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

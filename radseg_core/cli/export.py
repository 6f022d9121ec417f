"""``radseg-export``: the per-window encoder (RADIO + SCRA) as ONNX, for TensorRT or onnxruntime."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radseg_core.cli import common

PROG = "radseg-export"
DESCRIPTION = """\
Export what the RADSeg encoder runs per window: the RADIO backbone with SCRA in its last block, at one
window size (--crop), for any number of windows at once. Sliding windows, stitching, SCGA and the language
head stay in torch. Writes OUT (the graph, opset 18) and OUT.data (the weights, ONNX external data; keep
both in one folder), then checks the file in onnxruntime against torch on the same windows (--no-check
skips that) and prints the trtexec line that builds a TensorRT fp16 engine (docs/deploy.md).

The file names its window size, feature size, SCRA setting and a digest of the weights: the node's
encoder_backend:=onnxruntime with onnx_model:=OUT (or --encoder-backend onnxruntime --onnx-model OUT)
refuses it for another model or other settings.
"""
EPILOG = """\
examples:
  radseg-export -o models/radseg_b_336.onnx                               # c-radio_v3-b, 336 windows
  radseg-export --model c-radio_v3-b --radio-repo-dir ~/radseg_weights/RADIO \\
      --radio-checkpoint ~/radseg_weights/c-radio_v3-b_half.pth.tar --text-model-path ~/radseg_weights/text \\
      --crop 336 --stride 336 -o models/radseg_b_336.onnx                  # offline, Jetson preset windows
  radseg-export --model random-tiny -o /tmp/tiny.onnx                      # offline smoke run (NOT semantic)
"""


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument("-o", "--out", required=True, help="graph file to write (.onnx); weights go to OUT.data")
    p.add_argument("--model", default=common.DEFAULT_MODEL,
                   help="c-radio_v3-b|-l|-h (torch.hub), hf:<repo id>, or random-tiny / random-base")
    p.add_argument("--lang", default="siglip2", choices=["siglip2", "clip"], help="language adaptor")
    p.add_argument("--radio-repo-dir", default=None, help="offline: local NVlabs/RADIO checkout")
    p.add_argument("--radio-checkpoint", default=None, help="offline: local RADIO checkpoint (.pth.tar)")
    p.add_argument("--text-model-path", default=None,
                   help="local SigLIP2 text model folder (loading the checkpoint resolves it; it is not exported)")
    p.add_argument("--crop", type=common.positive_int, default=336, help="window size (multiple of 16)")
    p.add_argument("--stride", type=common.positive_int, default=224,
                   help="window stride: only sets the typical number of windows in the trtexec line")
    p.add_argument("--image-size", default="640x480", help="WxH of the camera, for the trtexec line")
    p.add_argument("--scra-scaling", type=float, default=10.0, help="SCRA temperature (paper: 10)")
    p.add_argument("--no-scra", action="store_true", help="export the plain last block (ablations)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime round trip")
    return p


def windows_per_frame(image_size: str, crop: int, stride: int, patch: int) -> int:
    from radseg_core.encoder.windows import snap_size, window_grid

    try:
        w, h = (int(v) for v in image_size.lower().split("x"))
    except ValueError:
        raise common.CLIError(f"--image-size must be WxH, e.g. 640x480, got {image_size!r}") from None
    h, w = snap_size(h, w, patch)
    return window_grid(h, w, crop, stride, patch).num


def round_trip(encoder, info, windows: int) -> float:
    """Max |onnxruntime - torch| over ``windows`` random windows (fp32, CPU execution provider)."""
    import torch

    from radseg_core.encoder.backends import OnnxRuntimeWindows, WindowBackbone

    unit = WindowBackbone(encoder.model, encoder.patch).eval()
    ort = OnnxRuntimeWindows(info.path, encoder.device, fallback=unit)
    h, w = info.window
    x = torch.rand(windows, 3, h, w, generator=torch.Generator().manual_seed(1)).to(encoder.device)
    with torch.no_grad():
        return float((ort(x) - unit(x).float()).abs().max())


def main(argv: list[str] | None = None) -> int:
    args = common.parse(build_parser(), argv)
    if isinstance(args, int):
        return args

    def body() -> int:
        from radseg_core.compat import patch_torchvision

        patch_torchvision()
        from radseg_core.encoder import build_encoder
        from radseg_core.export import export_onnx, trtexec_command

        common.random_banner(args.model)
        if args.crop % 16:
            raise common.CLIError(f"--crop must be a multiple of 16, got {args.crop}")
        encoder = build_encoder(
            args.model, lang=args.lang, device="cpu", repo_dir=args.radio_repo_dir, checkpoint=args.radio_checkpoint,
            text_model_dir=args.text_model_path, crop=args.crop, stride=args.crop,  # stride: not in the graph
            scra=not args.no_scra, scra_scaling=args.scra_scaling, check_autocast=False,
        )
        info = export_onnx(encoder, Path(args.out))
        n = windows_per_frame(args.image_size, args.crop, args.stride, encoder.patch)
        report = {"onnx": str(info.path), "data": str(info.data_path), "window": list(info.window),
                  "feature_dim": info.feature_dim, "opset": info.opset, "bytes": info.bytes,
                  "export_seconds": round(info.seconds, 1), "windows_per_frame": n,
                  "trtexec": trtexec_command(info, n, max_windows=2 * n)}
        if not args.no_check:
            report["max_abs_diff_vs_torch"] = round_trip(encoder, info, windows=2)
        print(json.dumps(report, indent=2))
        print(f"TensorRT fp16 engine (next to {info.path.name} and {info.data_path.name}):\n  {report['trtexec']}",
              file=sys.stderr)
        return 0

    return common.run(PROG, body)


if __name__ == "__main__":
    raise SystemExit(main())

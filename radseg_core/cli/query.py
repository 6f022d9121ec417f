"""``radseg-query``: text in, where it is in a saved map out (JSON on stdout, heat clouds, a picture)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from radseg_core.cli import common

PROG = "radseg-query"
DESCRIPTION = """\
Score every voxel of a saved map (from radseg-map or the node's ~/save_map) against text queries and
report the best candidates: groups of adjacent high-scoring voxels with their centroid, extent, score
and voxel count. The model named in the map is loaded (override with --model); features maps answer
any text, probabilities maps only their class names.

stdout gets the candidates as JSON (progress and warnings go to stderr), and OUT_DIR receives:

  query.json     the same JSON
  query_<i>.ply  voxel centres coloured by the heat of query i (attribute: score)
  query.png      top-down picture: heat of the best query per voxel, candidate boxes, a legend
"""
EPILOG = """\
examples:
  radseg-query out/room/map.rsmap chair "fire extinguisher" -o out/room/query
  radseg-query out/room/map.rsmap door --top-k 3 | jq '.queries[0].candidates[0].centroid'
  radseg-query office.rsmap "red backpack" --view oblique --threshold 0.6
"""


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument("map", metavar="MAP", help="map file (.rsmap)")
    p.add_argument("texts", metavar="TEXT", nargs="+", help="what to look for")
    p.add_argument("-o", "--out-dir", default=None, help="write query.json, query_<i>.ply and query.png here")
    p.add_argument("--top-k", type=common.positive_int, default=5, help="candidates per query")
    p.add_argument("--threshold", type=float, default=None,
                   help="score a voxel needs to join a candidate group (default: the mapper's, 0.5)")
    p.add_argument("--view", default="top", choices=["top", "oblique"], help="picture projection")
    common.add_model_args(p, default=None)
    return p


def candidates_json(result, texts: list[str]) -> list[dict]:
    out = []
    for q, text in enumerate(texts):
        cands = [c for c in result.candidates if c.query_index == q]
        out.append({
            "query": text,
            "max_score": float(result.scores[q].max()) if result.scores.shape[1] else 0.0,
            "candidates": [
                {"query": text, "score": float(c.score), "centroid": [float(x) for x in c.centroid],
                 "extent": [float(x) for x in c.extent], "voxels": int(c.voxels)}
                for c in cands
            ],
        })
    return out


def query_picture(mapper, result, texts: list[str], view: str = "top", width: int = 800) -> np.ndarray:
    """Heat of each voxel's best query score, candidate boxes in per-query colours, a legend."""
    from radseg_core.render import Marker, render_map
    from radseg_core.visual import heat_colors

    best = result.scores.max(axis=0)
    pal = common.class_palette(len(texts))
    markers = []
    for rank_by_q in range(len(texts)):
        mine = [c for c in result.candidates if c.query_index == rank_by_q]
        for r, c in enumerate(mine):
            color = tuple(int(x) for x in pal[rank_by_q + 1]) if len(texts) > 1 else (255, 255, 255)
            markers.append(Marker(c.centroid, np.maximum(c.extent, mapper.map.voxel_size),
                                  f"{r + 1}:{texts[rank_by_q]} {c.score:.2f}", color))
    legend: list[tuple[str, object]] = [
        (f"heat: best score {float(best.min()):.2f} (blue) .. {float(best.max()):.2f} (red)", None)]
    for q, text in enumerate(texts):
        color = tuple(int(x) for x in pal[q + 1]) if len(texts) > 1 else (255, 255, 255)
        legend.append((f"'{text}': {sum(c.query_index == q for c in result.candidates)} candidates", color))
    return render_map(result.positions, heat_colors(best), voxel_size=mapper.map.voxel_size, view=view,
                      width=width, markers=markers, legend=legend)


def main(argv: list[str] | None = None) -> int:
    args = common.parse(build_parser(), argv)
    return args if isinstance(args, int) else common.run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    texts = [t.strip() for t in args.texts]
    if not all(texts):
        raise common.CLIError("empty query text")
    cfg, _ = common.mapper_config_from_map(args.map, args.model, args)
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:
            raise common.CLIError(f"--threshold must be in [0, 1], got {args.threshold}")
        cfg.query_threshold = args.threshold
    mapper = common.build_mapper(cfg)
    mapper.load(args.map)
    if len(mapper.map) == 0:
        raise common.CLIError(f"{args.map} holds no voxels: nothing to query")
    result = mapper.query(texts, top_k=args.top_k)
    report = {
        "map": str(args.map),
        "model": mapper.encoder.model_name,
        "random_weights": common.is_random(cfg.model),
        "mode": cfg.mode,
        "voxels": len(mapper.map),
        "queries": candidates_json(result, texts),
    }
    if args.out_dir:
        from radseg_core.map_io import export_ply
        from radseg_core.render import save_png

        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report["files"] = {"json": str(out / "query.json"), "picture": str(out / "query.png"), "ply": []}
        for q in range(len(texts)):
            p = export_ply(mapper.map, out / f"query_{q}.ply", color_by="heat", scores=result.scores[q])
            report["files"]["ply"].append(str(p))
        save_png(out / "query.png", query_picture(mapper, result, texts, view=args.view))
        common.write_json(out / "query.json", report)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    common.random_banner(cfg.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the view draws, as plain arrays: query answers, map samples, the camera. No rerun in here.

Kept apart from the logging so the query-to-picture logic is tested without a viewer or a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radseg_core.types import QueryResult
from radseg_core.visual import heat_colors, label_palette

BOX_COLOR = (255, 0, 255)  # candidate boxes: a colour neither the label palette nor the heat ramp uses
QUERY_SEPARATOR = ";"


def split_query(text: str) -> list[str]:
    """The query box's text → query texts: ``;`` separates texts; a blank box is no text at all.

    Texts are not stripped of inner content, so an empty piece (``"chair;;door"``) stays and is refused
    by the same check as an empty text sent to ``~/query``.
    """
    if not text.strip():
        return []
    return [t.strip() for t in text.split(QUERY_SEPARATOR)]


@dataclass
class Boxes:
    """Axis-aligned boxes with labels (candidates of a query)."""

    centers: np.ndarray  # (M, 3) float32
    half_sizes: np.ndarray  # (M, 3) float32
    labels: list[str]
    colors: np.ndarray  # (M, 3) uint8


@dataclass
class Cloud:
    """Coloured points (voxel centres)."""

    positions: np.ndarray  # (N, 3) float32
    colors: np.ndarray  # (N, 3) uint8
    radius: float


def candidate_boxes(result: QueryResult, voxel_size: float) -> Boxes:
    """One labelled box per candidate, ``rank: text score``; at least one voxel in size."""
    cands = result.candidates
    centers = np.array([c.centroid for c in cands], np.float32).reshape(-1, 3)
    sizes = np.array([np.maximum(c.extent, voxel_size) for c in cands], np.float32).reshape(-1, 3)
    rank: dict[int, int] = {}
    labels = []
    for c in cands:
        rank[c.query_index] = rank.get(c.query_index, 0) + 1
        labels.append(f"{rank[c.query_index]}: {result.queries[c.query_index]} {c.score:.2f}")
    colors = np.tile(np.array(BOX_COLOR, np.uint8), (len(cands), 1))
    return Boxes(centers, sizes / 2, labels, colors)


def heat_cloud(result: QueryResult, voxel_size: float, max_points: int | None = None) -> Cloud:
    """Every voxel coloured by its best score over the queries (blue low .. red high).

    Drawn a little larger than the map's points, so it covers them where both exist; voxels mapped
    after the query keep their map colour. Over ``max_points`` a fixed random subset is drawn.
    """
    best = result.scores.max(axis=0) if result.scores.size else np.zeros(0)
    positions = np.asarray(result.positions, np.float32)
    colors = heat_colors(best)
    radius = 0.6 * voxel_size
    if max_points is not None and len(positions) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(positions), max_points, replace=False))
        radius *= min(2.0, (len(positions) / max_points) ** 0.5)
        positions, colors = positions[keep], colors[keep]
    return Cloud(positions, colors, radius)


def answer_json(result: QueryResult, texts: list[str], voxels: int) -> dict:
    """The page's answer: radseg-query's JSON per text, and one summary line."""
    from radseg_core.cli.query import candidates_json

    return {
        "ok": True,
        "message": f"{len(result.candidates)} candidates for {len(texts)} "
                   f"{'query' if len(texts) == 1 else 'queries'} over {voxels} voxels",
        "queries": candidates_json(result, texts),
    }


def sample_mask(keys: np.ndarray, max_points: int) -> np.ndarray:
    """A subset of about ``max_points`` voxels chosen by a hash of their keys: the same voxels on every
    refresh (no flicker in a growing map), spread over the whole map."""
    keys = np.asarray(keys)
    n = keys.shape[0]
    if n <= max_points:
        return np.ones(n, bool)
    h = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: uniform top bits
    h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53) < max_points / n


def class_annotations(classes: list[str]) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(id, name, colour) of label ids 0..K for the viewer's legend; 0 is 'unknown' (black)."""
    pal = label_palette(len(classes) + 1)
    return [(i, "unknown" if i == 0 else classes[i - 1], tuple(int(c) for c in pal[i]))
            for i in range(len(classes) + 1)]

"""What rviz shows: colourised label images and markers for query candidates."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from radseg_core.navigation.objects import MapObject
from radseg_core.types import QueryResult
from radseg_core.visual import label_palette, overlay_labels


def colorize_labels(labels: np.ndarray, rgb: np.ndarray | None = None, alpha: float = 0.6) -> np.ndarray:
    """(H, W) labels → (H, W, 3) uint8, blended over the camera image when given (label 0 stays raw)."""
    if rgb is None:
        return label_palette(int(labels.max()) + 1)[labels]
    return overlay_labels(rgb, labels, alpha)


def _box_and_text(header: Header, ns: tuple[str, str], ids: tuple[int, int], centroid, extent, rgb: tuple[float, ...],
                  alpha: float, caption: str) -> list[Marker]:
    """A translucent box at ``centroid`` of size ``extent`` and a white caption floating above it (namespaces
    and marker ids: box, text)."""
    centre = Point(x=float(centroid[0]), y=float(centroid[1]), z=float(centroid[2]))
    box = Marker(header=header, ns=ns[0], id=ids[0], type=Marker.CUBE, action=Marker.ADD)
    box.pose.position = centre
    box.pose.orientation.w = 1.0
    box.scale = Vector3(x=float(extent[0]), y=float(extent[1]), z=float(extent[2]))
    box.color = ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=alpha)
    text = Marker(header=header, ns=ns[1], id=ids[1], type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    text.pose.position = Point(x=centre.x, y=centre.y, z=centre.z + float(extent[2]) / 2 + 0.1)
    text.pose.orientation.w = 1.0
    text.scale.z = 0.12
    text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    text.text = caption
    return [box, text]


def candidate_markers(result: QueryResult, header: Header) -> MarkerArray:
    """A box and a text label per candidate; a DELETEALL first so old queries disappear."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    palette = label_palette(len(result.queries) + 1)
    for i, cand in enumerate(result.candidates):
        rgb = tuple((palette[cand.query_index + 1] / 255.0).tolist())
        markers += _box_and_text(header, ("candidates", "labels"), (2 * i, 2 * i + 1), cand.centroid,
                                 np.maximum(cand.extent, 0.05), rgb, 0.4,
                                 f"{result.queries[cand.query_index]} {cand.score:.2f}")
    return MarkerArray(markers=markers)


def object_markers(objects: list[MapObject], names: list[str], header: Header) -> MarkerArray:
    """A box and an "id label" text per object, marker ids = object ids (rviz keeps them in place across
    calls); a DELETEALL first so objects that left the map disappear. Colour by label within ``names``."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    palette = label_palette(len(names) + 1)
    for obj in objects:
        rgb = tuple((palette[names.index(obj.label) + 1 if obj.label in names else 0] / 255.0).tolist())
        markers += _box_and_text(header, ("objects", "object_labels"), (int(obj.id), int(obj.id)), obj.centroid,
                                 obj.extent, rgb, 0.35, f"{obj.id} {obj.label}")
    return MarkerArray(markers=markers)

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


def candidate_markers(result: QueryResult, header: Header) -> MarkerArray:
    """A box and a text label per candidate; a DELETEALL first so old queries disappear."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    palette = label_palette(len(result.queries) + 1)
    for i, cand in enumerate(result.candidates):
        r, g, b = (palette[cand.query_index + 1] / 255.0).tolist()
        centre = Point(x=float(cand.centroid[0]), y=float(cand.centroid[1]), z=float(cand.centroid[2]))
        box = Marker(header=header, ns="candidates", id=2 * i, type=Marker.CUBE, action=Marker.ADD)
        box.pose.position = centre
        box.pose.orientation.w = 1.0
        box.scale = Vector3(x=float(max(cand.extent[0], 0.05)), y=float(max(cand.extent[1], 0.05)),
                            z=float(max(cand.extent[2], 0.05)))
        box.color = ColorRGBA(r=r, g=g, b=b, a=0.4)
        text = Marker(header=header, ns="labels", id=2 * i + 1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position = Point(x=centre.x, y=centre.y, z=centre.z + float(cand.extent[2]) / 2 + 0.1)
        text.pose.orientation.w = 1.0
        text.scale.z = 0.12
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = f"{result.queries[cand.query_index]} {cand.score:.2f}"
        markers += [box, text]
    return MarkerArray(markers=markers)


def object_markers(objects: list[MapObject], names: list[str], header: Header) -> MarkerArray:
    """A box and an "id label" text per object, marker ids = object ids (rviz keeps them in place across
    calls); a DELETEALL first so objects that left the map disappear. Colour by label within ``names``."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    palette = label_palette(len(names) + 1)
    for obj in objects:
        idx = names.index(obj.label) + 1 if obj.label in names else 0
        r, g, b = (palette[idx] / 255.0).tolist()
        centre = Point(x=float(obj.centroid[0]), y=float(obj.centroid[1]), z=float(obj.centroid[2]))
        box = Marker(header=header, ns="objects", id=int(obj.id), type=Marker.CUBE, action=Marker.ADD)
        box.pose.position = centre
        box.pose.orientation.w = 1.0
        box.scale = Vector3(x=float(obj.extent[0]), y=float(obj.extent[1]), z=float(obj.extent[2]))
        box.color = ColorRGBA(r=r, g=g, b=b, a=0.35)
        text = Marker(header=header, ns="object_labels", id=int(obj.id), type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD)
        text.pose.position = Point(x=centre.x, y=centre.y, z=centre.z + float(obj.extent[2]) / 2 + 0.1)
        text.pose.orientation.w = 1.0
        text.scale.z = 0.12
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = f"{obj.id} {obj.label}"
        markers += [box, text]
    return MarkerArray(markers=markers)

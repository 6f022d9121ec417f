"""Top-down pictures of navigation answers: masks over the map, a goal arrow and the object it leads to.

Drawn with ``radseg_core.render`` (orthographic splats, numpy + OpenCV), so docs and users see the same
geometry the node publishes: mask cells are the voxel columns the OccupancyGrid holds, the arrow starts
at the goal and points along its yaw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radseg_core.navigation.goals import Goal
from radseg_core.navigation.masks import KEEPOUT_FILTER, FilterMask
from radseg_core.render import Marker, OrthoCamera, draw_arrow, draw_cells, draw_legend, draw_markers, legend_height
from radseg_core.render import splat as splat_points

KEEPOUT_COLOR = (230, 40, 40)
SPEED_COLOR = (250, 180, 30)
GOAL_COLOR = (60, 230, 90)
ROBOT_COLOR = (80, 160, 255)


def active_cells(mask: FilterMask, z: float = 0.0) -> np.ndarray:
    """(N, 3) centres of the cells a mask acts on (keepout 100, speed > 0), at height ``z``."""
    inactive = -1 if mask.filter_type == KEEPOUT_FILTER else 0
    v, u = np.nonzero(mask.data != inactive)
    x, y = mask.grid.center(u, v)
    return np.stack([x, y, np.full(len(x), z)], axis=1)


def navigation_picture(points: np.ndarray, colors: np.ndarray, *, voxel_size: float,
                       masks: Sequence[FilterMask] = (), goal: Goal | None = None,
                       robot_xy: tuple[float, float] | None = None, caption: str = "", width: int = 800,
                       legend: Sequence[tuple[str, tuple[int, int, int] | None]] = ()) -> np.ndarray:
    """(H, W, 3) uint8: the map from above, mask cells tinted over it, the goal as an arrow along its yaw
    with the chosen object's box, and the robot as a dot."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    extra = [p for p in ([goal.x, goal.y, 0.0] if goal else None, [*robot_xy, 0.0] if robot_xy else None) if p]
    frame = np.concatenate([points, np.asarray(extra, np.float64).reshape(-1, 3)])
    cam = OrthoCamera(frame if len(frame) else np.zeros((1, 3)), view="top", width=width)
    img, _ = splat_points(cam, points, colors, max(int(np.ceil(voxel_size * cam.scale / 2)), 0))
    for mask in masks:
        color = KEEPOUT_COLOR if mask.filter_type == KEEPOUT_FILTER else SPEED_COLOR
        draw_cells(img, cam, active_cells(mask, z=float(points[:, 2].max()) + 1 if len(points) else 0.0),
                   voxel_size, color)
    if goal is not None:
        c = goal.candidate
        draw_markers(img, cam, [Marker(c.centroid, c.extent, caption, GOAL_COLOR)])
        tip = np.array([goal.x + 0.5 * np.cos(goal.yaw), goal.y + 0.5 * np.sin(goal.yaw), 0.0])
        draw_arrow(img, cam, np.array([goal.x, goal.y, 0.0]), tip, GOAL_COLOR)
    if robot_xy is not None:
        import cv2

        uv, _ = cam.project(np.array([[*robot_xy, 0.0]]))
        centre = (int(round(uv[0, 0])), int(round(uv[0, 1])))
        cv2.circle(img, centre, 7, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(img, centre, 5, ROBOT_COLOR, -1, cv2.LINE_AA)
    if legend:
        strip = np.zeros((legend_height(len(legend)) + 6, img.shape[1], 3), np.uint8)
        strip[:] = img[0, 0]
        img = np.concatenate([strip, img], axis=0)
        draw_legend(img, legend)
    return img


def docs_pictures(out_dir: str, robot_xy: tuple[float, float] = (2.5, 2.0)) -> list[str]:
    """The pictures of docs/navigation.md: the synthetic room mapped from its ground-truth labels, a keepout
    mask ("bed") and a speed mask ("table", "chair") over it, and the goal for "cabinet"."""
    from pathlib import Path

    from radseg_core.navigation.goals import plan_goal
    from radseg_core.navigation.masks import keepout_mask, speed_mask
    from radseg_core.navigation.scenes import ROOM_CLASSES, room_map
    from radseg_core.navigation.standing import Body
    from radseg_core.render import save_png

    vm = room_map()
    ijk, vals = vm.voxel_indices().numpy(), vm.values().numpy()
    pts = vm.centers().numpy()
    keep = pts[:, 2] < 1.6  # no ceiling, so the floor shows from above
    colors = vm.colors().numpy()  # the camera's colours
    grey = np.repeat((colors.mean(axis=1, keepdims=True) * 0.7).astype(np.uint8), 3, axis=1)
    body = Body()
    band = (body.floor_z - body.step_height, body.floor_z + body.height)

    def col(name: str) -> np.ndarray:
        return vals[:, ROOM_CLASSES.index(name)]

    masks = [keepout_mask(ijk, col("bed")[None], voxel_size=vm.voxel_size, z_band=band, threshold=0.5),
             speed_mask(ijk, np.stack([col("table"), col("chair")]), voxel_size=vm.voxel_size, z_band=band,
                        threshold=0.5, limit_percent=40)]
    out = Path(out_dir)
    legend_masks = [("synthetic room mapped from its ground-truth labels (one-hot); black: never seen", None),
                    ("keepout mask: 'bed' (value 100 -> lethal)", KEEPOUT_COLOR),
                    ("speed mask: 'table', 'chair' (40 % of max speed)", SPEED_COLOR)]
    paths = [save_png(out / "navigation_masks.png", navigation_picture(
        pts[keep], grey[keep], voxel_size=vm.voxel_size, masks=masks, legend=legend_masks))]
    ans = plan_goal(ijk, col("cabinet"), voxel_size=vm.voxel_size, threshold=0.5, robot_xy=robot_xy,
                    standoff=0.8, body=body, text="cabinet")
    legend_goal = [("~/query_goal 'cabinet', standoff 0.8 m, robot_radius 0.3 m", None),
                   ("goal: arrow along its yaw; box: the chosen object", GOAL_COLOR),
                   ("robot (TF base_link)", ROBOT_COLOR)]
    paths.append(save_png(out / "navigation_goal.png", navigation_picture(
        pts[keep], colors[keep], voxel_size=vm.voxel_size, goal=ans.goal, robot_xy=robot_xy, caption="cabinet",
        legend=legend_goal)))
    return [str(p) for p in paths]


if __name__ == "__main__":  # python -m radseg_core.navigation.pictures docs/images
    import sys

    print("\n".join(docs_pictures(sys.argv[1] if len(sys.argv) > 1 else "docs/images")))

"""Navigation answers from a SemanticMapper: goals, costmap filter masks and the object list.

Scores come from the mapper's own queries (``SemanticMapper.query``: the relative score of ``~/query``
in features mode, the class probability in probabilities mode) and object labels from its class labels
(``SemanticMapper.cloud``), so navigation sees exactly what the query service and the semantic cloud
show. Callers that share the mapper hold its lock around these calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radseg_core.navigation.goals import BAD_REQUEST, EMPTY_MAP, GoalAnswer, plan_goal, refusal
from radseg_core.navigation.grid import grid_shift
from radseg_core.navigation.masks import FilterMask, keepout_mask, speed_mask
from radseg_core.navigation.objects import MapObject, find_objects
from radseg_core.navigation.standing import Body
from radseg_core.pipeline import SemanticMapper


@dataclass(frozen=True)
class NavSettings:
    """The node's navigation parameters, one to one."""

    body: Body = field(default_factory=Body)
    standoff: float = 0.8  # default distance of a goal from its object
    speed_limit_percent: int = 50  # speed mask value where a speed query matches
    objects_min_voxels: int = 10  # smaller groups are not objects

    @property
    def mask_band(self) -> tuple[float, float]:
        """Heights a mask looks at: from the floor band's bottom to the top of the robot."""
        return self.body.floor_z - self.body.step_height, self.body.floor_z + self.body.height


def goal_for(mapper: SemanticMapper, text: str, robot_xy: tuple[float, float] | None,
             settings: NavSettings, standoff: float | None = None) -> GoalAnswer:
    """Go to ``text``: a goal pose, or the reason there is none."""
    vmap = mapper.map
    if len(vmap) == 0:
        return refusal(EMPTY_MAP, "the map is empty: no frames integrated yet")
    try:
        result = mapper.query([text], top_k=1)
    except ValueError as exc:  # e.g. a text that is not a class of a probabilities map
        return refusal(BAD_REQUEST, str(exc))
    return plan_goal(vmap.voxel_indices().cpu(), result.scores[0], voxel_size=vmap.voxel_size,
                     shift=grid_shift(vmap.grid), threshold=mapper.config.query_threshold, robot_xy=robot_xy,
                     standoff=settings.standoff if standoff is None else standoff, body=settings.body, text=text)


def masks_for(mapper: SemanticMapper, keepout: list[str], speed: list[str],
              settings: NavSettings) -> dict[str, FilterMask]:
    """``{"keepout": ..., "speed": ...}`` for the non-empty lists (an empty map gives 0 x 0 masks).

    Raises ValueError for texts the mapper cannot score (not classes of a probabilities map).
    """
    vmap = mapper.map
    texts = list(keepout) + list(speed)
    if not texts:
        return {}
    if len(vmap):
        scores = mapper.query(texts, top_k=1).scores
        ijk = vmap.voxel_indices().cpu().numpy()
    else:
        scores, ijk = np.zeros((len(texts), 0)), np.zeros((0, 3), np.int64)
    common = dict(voxel_size=vmap.voxel_size, shift=grid_shift(vmap.grid), z_band=settings.mask_band,
                  threshold=mapper.config.query_threshold)
    out = {}
    if keepout:
        out["keepout"] = keepout_mask(ijk, scores[: len(keepout)], **common)
    if speed:
        out["speed"] = speed_mask(ijk, scores[len(keepout):], limit_percent=settings.speed_limit_percent, **common)
    return out


def voxel_classes(mapper: SemanticMapper, vocabulary: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: index of its label in ``vocabulary`` (-1: none of them) and that label's score.

    A vocabulary of class names uses the labels of the semantic cloud (best class among all classes,
    kept incrementally); other texts (features mode) score as queries and the best of them wins.
    """
    classes = list(mapper.config.classes)
    if all(name in classes for name in vocabulary):
        cloud = mapper.cloud()
        lut = np.full(len(classes) + 1, -1, np.int64)  # cloud labels: 0 = none, i = classes[i - 1]
        for k, name in enumerate(vocabulary):
            lut[classes.index(name) + 1] = k
        return lut[cloud["label"].astype(np.int64)], cloud["score"].astype(np.float64)
    scores = mapper.query(list(vocabulary), top_k=1).scores
    return scores.argmax(axis=0).astype(np.int64), scores.max(axis=0).astype(np.float64)


def objects_for(mapper: SemanticMapper, vocabulary: list[str] | None, settings: NavSettings) -> list[MapObject]:
    """The objects of ``vocabulary`` (None or empty: the classes) in the map, ids kept in its metadata."""
    vmap = mapper.map
    names = list(dict.fromkeys(vocabulary or mapper.config.classes))
    if len(vmap):
        label, score = voxel_classes(mapper, names)
        keys, ijk = vmap.keys().cpu().numpy(), vmap.voxel_indices().cpu().numpy()
    else:
        label, score = np.zeros(0, np.int64), np.zeros(0)
        keys, ijk = np.zeros(0, np.int64), np.zeros((0, 3), np.int64)
    return find_objects(keys, ijk, label, score, names, voxel_size=vmap.voxel_size, shift=grid_shift(vmap.grid),
                        threshold=mapper.config.query_threshold, min_voxels=settings.objects_min_voxels,
                        metadata=vmap.metadata)

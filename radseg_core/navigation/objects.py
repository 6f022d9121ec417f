"""What is here: the objects of a vocabulary in the map, each with an id that stays while it stays.

An object is a 26-connected group of at least ``min_voxels`` voxels that share their best label within
the vocabulary, each scoring at least ``threshold``. What makes it the *same* object from one call to
the next is its voxels: a map grows (more of the chair is seen), voxels decay (clearing) and groups
merge or split, but the voxels that were the chair mostly still are. So each call matches the new
groups to the previous call's objects of the same label by shared voxel keys:

* a pair is a match when the shared voxels are at least half of the smaller of the two;
* pairs are taken greedily, most shared voxels first (ties: the older id), each object and group once:
  a group that grew keeps its id, a merge keeps the older one, a split gives the larger part the id;
* unmatched groups get new ids; ids are never reused (a counter that only grows).

The registry (each object's id, label and voxel keys) lives in the map's metadata (``"objects"``), so it
is saved and loaded with the map file and ids survive save/load. Keys are stored sorted,
delta-encoded and zlib-compressed (a few bytes per object voxel). A map placed into another frame on
load (re-voxelised) has other keys: its objects get new ids. At most ``MAX_VOCABULARIES`` vocabularies
are remembered (the most recent).
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from radseg_core.query import connected_components

REGISTRY_KEY = "objects"
MAX_VOCABULARIES = 4
MIN_SHARED = 0.5  # shared voxels / voxels of the smaller of the two, for a match


@dataclass
class MapObject:
    id: int
    label: str
    score: float  # mean score of its voxels
    centroid: np.ndarray  # (3,) mean voxel centre, map frame
    extent: np.ndarray  # (3,) axis-aligned size of its voxels (metres)
    voxels: int
    keys: np.ndarray  # (voxels,) sorted packed voxel keys: its identity


def encode_keys(keys: np.ndarray) -> str:
    """Sorted int64 keys -> compact ASCII (first key, then gaps; zlib; base64)."""
    k = np.sort(np.asarray(keys, dtype=np.int64))
    gaps = np.diff(k, prepend=np.int64(0)).astype("<i8")
    return base64.b64encode(zlib.compress(gaps.tobytes(), 6)).decode("ascii")


def decode_keys(text: str) -> np.ndarray:
    gaps = np.frombuffer(zlib.decompress(base64.b64decode(text.encode("ascii"))), dtype="<i8")
    return np.cumsum(gaps).astype(np.int64)


def vocabulary_key(names: list[str]) -> str:
    return json.dumps(sorted(set(names)))


def _groups(ijk: np.ndarray, label: np.ndarray, score: np.ndarray, threshold: float,
            min_voxels: int) -> list[tuple[int, np.ndarray]]:
    """(label index, member indices) of each connected group of same-label voxels scoring >= threshold."""
    out = []
    for lab in np.unique(label[label >= 0]):
        sel = np.nonzero((label == lab) & (score >= threshold))[0]
        if len(sel) < min_voxels:
            continue
        comp = connected_components(torch.from_numpy(ijk[sel])).numpy()
        order = np.argsort(comp, kind="stable")
        bounds = np.flatnonzero(np.diff(comp[order])) + 1
        for members in np.split(sel[order], bounds):
            if len(members) >= min_voxels:
                out.append((int(lab), members))
    return out


def _read_registry(metadata: dict[str, Any], vkey: str) -> tuple[int, list[tuple[int, str, np.ndarray]]]:
    """(next id, previous objects) from the metadata; anything unreadable starts afresh (ids keep growing)."""
    reg = metadata.get(REGISTRY_KEY)
    if not isinstance(reg, dict):
        return 1, []
    next_id = reg.get("next_id", 1)
    next_id = next_id if isinstance(next_id, int) and next_id >= 1 else 1
    prev = []
    try:
        for entry in reg.get("vocabularies", {}).get(vkey, []):
            prev.append((int(entry["id"]), str(entry["label"]), decode_keys(entry["keys"])))
            next_id = max(next_id, prev[-1][0] + 1)
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
        return next_id, []
    return next_id, prev


def _write_registry(metadata: dict[str, Any], vkey: str, next_id: int, objects: list[MapObject]) -> None:
    reg = metadata.get(REGISTRY_KEY)
    vocabs = dict(reg.get("vocabularies", {})) if isinstance(reg, dict) else {}
    vocabs.pop(vkey, None)
    vocabs[vkey] = [{"id": o.id, "label": o.label, "keys": encode_keys(o.keys)} for o in objects]
    while len(vocabs) > MAX_VOCABULARIES:  # dicts keep insertion order: drop the least recently used
        vocabs.pop(next(iter(vocabs)))
    metadata[REGISTRY_KEY] = {"next_id": int(next_id), "vocabularies": vocabs}


def match_ids(new: list[tuple[str, np.ndarray]], prev: list[tuple[int, str, np.ndarray]],
              next_id: int) -> tuple[list[int], int]:
    """Ids for ``new`` (label, sorted keys) given ``prev`` (id, label, sorted keys); returns (ids, next id)."""
    ids: list[int | None] = [None] * len(new)
    pairs = []
    if prev and new:
        prev_keys = np.concatenate([k for _, _, k in prev])
        owner = np.repeat(np.arange(len(prev)), [len(k) for _, _, k in prev])
        order = np.argsort(prev_keys, kind="stable")
        prev_keys, owner = prev_keys[order], owner[order]
        for j, (label, keys) in enumerate(new):
            pos = np.clip(np.searchsorted(prev_keys, keys), 0, len(prev_keys) - 1)
            hit = prev_keys[pos] == keys
            owners, shared = np.unique(owner[pos[hit]], return_counts=True)
            for i, n in zip(owners.tolist(), shared.tolist(), strict=True):
                pid, plabel, pkeys = prev[i]
                if plabel == label and n >= MIN_SHARED * min(len(keys), len(pkeys)):
                    pairs.append((-n, pid, j))
    taken = set()
    for _, pid, j in sorted(pairs):
        if ids[j] is None and pid not in taken:
            ids[j] = pid
            taken.add(pid)
    for j in range(len(new)):  # new ids in the groups' order: the same map gives the same ids
        if ids[j] is None:
            ids[j] = next_id
            next_id += 1
    return [int(i) for i in ids], next_id


def find_objects(keys: np.ndarray, ijk: np.ndarray, label: np.ndarray, score: np.ndarray, names: list[str], *,
                 voxel_size: float, shift: float = 0.0, threshold: float, min_voxels: int = 10,
                 metadata: dict[str, Any] | None = None) -> list[MapObject]:
    """The objects of the vocabulary ``names`` with ids matched to the registry in ``metadata`` (updated).

    Per voxel (N,): packed ``keys``, integer ``ijk`` (N, 3), ``label`` (index into ``names``, -1 = none of
    them) and ``score``. Returns the objects by id.
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    label = np.asarray(label, dtype=np.int64).reshape(-1)
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    groups = _groups(ijk, label, score, threshold, max(int(min_voxels), 1))
    # deterministic order for new ids: label, then the group's smallest key
    groups.sort(key=lambda g: (names[g[0]], int(keys[g[1]].min())))
    new = [(names[lab], np.sort(keys[members])) for lab, members in groups]
    vkey = vocabulary_key(names)
    meta = metadata if metadata is not None else {}
    next_id, prev = _read_registry(meta, vkey)
    ids, next_id = match_ids(new, prev, next_id)
    objects = []
    for oid, (lab, members), (_, okeys) in zip(ids, groups, new, strict=True):
        centres = (ijk[members].astype(np.float64) + 0.5 - shift) * voxel_size
        lo, hi = centres.min(axis=0), centres.max(axis=0)
        objects.append(MapObject(oid, names[lab], float(score[members].mean()), centres.mean(axis=0),
                                 hi - lo + voxel_size, len(members), okeys))
    objects.sort(key=lambda o: o.id)
    _write_registry(meta, vkey, next_id, objects)
    return objects

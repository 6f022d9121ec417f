"""What is here: objects with ids that hold while the map grows and across save/load."""

from __future__ import annotations

import numpy as np
import pytest

from radseg_core.navigation import NavSettings, objects_for
from radseg_core.navigation.objects import REGISTRY_KEY, decode_keys, encode_keys, find_objects, match_ids
from radseg_core.navigation.scenes import ROOM_CLASSES, integrate_labelled, room
from radseg_core.pipeline import MapperConfig, SemanticMapper

SETTINGS = NavSettings(objects_min_voxels=10)


@pytest.fixture(scope="module")
def encoder():
    from radseg_core.encoder import build_encoder

    return build_encoder("random-tiny", crop=64, stride=48)


def mapper(encoder, **kw) -> SemanticMapper:
    cfg = MapperConfig(model="random-tiny", device="cpu", mode="probabilities", classes=list(ROOM_CLASSES),
                       storage_dtype="float32", **kw)
    return SemanticMapper(cfg, encoder=encoder)


def by_id(objects) -> dict[int, tuple[str, int]]:
    return {o.id: (o.label, o.voxels) for o in objects}


def test_object_ids_hold_as_the_map_grows_and_across_save_load(encoder, tmp_path):
    """The room replayed in two halves: once straight through, once with a save and a load in between."""
    scene = room()
    first, second = range(0, len(scene) // 2), range(len(scene) // 2, len(scene))
    straight = mapper(encoder)
    integrate_labelled(straight.map, scene, first)
    half = objects_for(straight, None, SETTINGS)
    assert len({o.label for o in half}) >= 6 and len({o.id for o in half}) == len(half)
    assert by_id(objects_for(straight, None, SETTINGS)) == by_id(half)  # stable across calls

    straight.save(tmp_path / "half.rsmap")
    resumed = mapper(encoder)
    resumed.load(tmp_path / "half.rsmap")
    assert by_id(objects_for(resumed, None, SETTINGS)) == by_id(half)  # the ids came back with the file

    integrate_labelled(straight.map, scene, second)
    integrate_labelled(resumed.map, scene, second)
    full = objects_for(straight, None, SETTINGS)
    assert by_id(objects_for(resumed, None, SETTINGS)) == by_id(full)
    # growth: each object now holds most of the voxels of the earlier object with its id
    grew = 0
    for obj in full:
        ancestor = max(half, key=lambda h: len(np.intersect1d(h.keys, obj.keys)))
        assert obj.id == ancestor.id and obj.label == ancestor.label
        grew += obj.voxels > 1.5 * ancestor.voxels
    assert grew >= 2  # the second half showed much more of some objects (bed, door, a wall)
    # an object that merged into a bigger one left its id behind, and ids are not handed out again
    assert {o.id for o in full} <= {o.id for o in half}
    assert straight.map.metadata[REGISTRY_KEY]["next_id"] == max(o.id for o in half) + 1


def test_match_ids_growth_merge_split_and_no_reuse():
    a, b = np.arange(0, 100), np.arange(200, 260)
    prev = [(1, "chair", a), (2, "chair", b), (3, "table", np.arange(500, 520))]
    # a grew; b split into a big and a small part; the table vanished; a new lamp appeared
    new = [("chair", np.arange(0, 150)), ("chair", np.arange(200, 240)), ("chair", np.arange(240, 260)),
           ("lamp", np.arange(900, 910))]
    ids, nxt = match_ids(new, prev, next_id=4)
    assert ids == [1, 2, 4, 5] and nxt == 6
    # a merge keeps the older id; another label never inherits an id
    ids, _ = match_ids([("chair", np.arange(0, 260)), ("sofa", np.arange(500, 520))], prev, next_id=4)
    assert ids == [1, 4]
    # too little overlap (less than half of the smaller) is a new object
    ids, _ = match_ids([("chair", np.arange(60, 160))], prev[:1], next_id=4)
    assert ids == [4]


def test_registry_survives_bad_metadata_and_stays_small():
    keys = np.array([5, 9, 10, 11, 400, 10_000_000_000])
    assert np.array_equal(decode_keys(encode_keys(keys[::-1])), keys)
    ijk = np.stack([np.arange(12), np.zeros(12), np.zeros(12)], axis=1).astype(np.int64)
    label, score = np.zeros(12, np.int64), np.ones(12)
    meta = {REGISTRY_KEY: {"next_id": 7, "vocabularies": {'["chair"]': [{"id": 1, "keys": "not base64"}]}}}
    objs = find_objects(np.arange(12), ijk, label, score, ["chair"], voxel_size=0.05, threshold=0.5,
                        min_voxels=5, metadata=meta)
    assert [o.id for o in objs] == [7]  # unreadable entries are dropped, the id counter is kept
    assert meta[REGISTRY_KEY]["next_id"] == 8
    big = np.sort(np.random.default_rng(0).choice(10**7, 50_000, replace=False))
    assert len(encode_keys(big)) < 5 * len(big)  # a few bytes per object voxel in the map file's header


def test_features_mode_objects_of_other_texts_follow_the_query_scores(encoder):
    """A vocabulary that is not the classes: each voxel takes the text whose query score is highest."""
    from test_pipeline import wall_frame

    m = SemanticMapper(MapperConfig(model="random-tiny", device="cpu", classes=["wall", "door", "floor"],
                                    query_threshold=0.0), encoder=encoder)
    for x in (0.0, 0.2):
        m.process(wall_frame(m, x))
    vocab = ["red thing", "blue thing"]
    objs = objects_for(m, vocab, NavSettings(objects_min_voxels=1))
    scores = m.query(vocab, top_k=1).scores
    keys = m.map.keys().numpy()
    assert objs and sum(o.voxels for o in objs) == len(m)  # threshold 0: every voxel is in some object
    for o in objs:
        rows = np.isin(keys, o.keys)
        assert np.all(scores[:, rows].argmax(axis=0) == vocab.index(o.label))
        assert o.score == pytest.approx(scores[:, rows].max(axis=0).mean(), rel=1e-5)

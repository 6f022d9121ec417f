"""SemanticMapper: the code path shared by the node and the command-line tools (random-tiny weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radseg_core.pipeline import MapperConfig, SemanticMapper


def wall_frame(mapper: SemanticMapper, x: float = 0.0, size: tuple[int, int] = (96, 128)):
    h, w = size
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth_mm = np.full((h, w), 1500, np.uint16)
    K = np.array([[100.0, 0, (w - 1) / 2], [0, 100.0, (h - 1) / 2], [0, 0, 1]])
    return mapper.make_frame(rgb, depth_mm, "16UC1", K, (w, h), np.array([x, 0, 0]), np.array([0, 0, 0, 1.0]))


@pytest.fixture(scope="module")
def encoder():
    from radseg_core.encoder import build_encoder

    return build_encoder("random-tiny", crop=64, stride=48)


def mapper_with(encoder, **kw) -> SemanticMapper:
    cfg = MapperConfig(model="random-tiny", device="cpu", classes=["wall", "door", "floor"], max_depth=5.0, **kw)
    return SemanticMapper(cfg, encoder=encoder)


def test_process_labels_and_integrates(encoder):
    m = mapper_with(encoder)
    out = m.process(wall_frame(m))
    assert out.labels.shape == (96, 128) and out.labels.dtype == np.uint16 and out.labels.max() <= 3
    assert out.points == 96 * 128 and len(m) > 0
    assert {"encoder", "segmentation", "integration"} <= set(out.timings)
    cloud = m.cloud()
    assert np.all(np.abs(cloud["xyz"][:, 2] - 1.5) < 0.05)
    assert cloud["label"].max() <= 3 and np.all((cloud["score"] >= 0) & (cloud["score"] <= 1))


def test_aligned_cache_gives_the_same_answers_as_realigning(encoder):
    cached, plain = mapper_with(encoder, cache_aligned=True), mapper_with(encoder)  # the cache is opt-in
    for x in (0.0, 0.1):
        for m in (cached, plain):
            m.process(wall_frame(m, x))
    a, b = cached.query(["door", "wall"], top_k=3), plain.query(["door", "wall"], top_k=3)
    # the cache stores fp16 unit vectors; softmax(100 cos) multiplies their ~1e-3 rounding by 100
    np.testing.assert_allclose(a.scores, b.scores, atol=0.02)
    agree = np.mean(cached.cloud()["label"] == plain.cloud()["label"])
    assert agree > 0.98
    mem_c, mem_p = cached.memory_stats(), plain.memory_stats()
    assert mem_p["query_cache_bytes"] == 0 and mem_c["query_cache_bytes"] > 0
    assert mem_p["label_cache_bytes"] == 12 * len(plain)  # fp16 (label, score) + int64 key per voxel
    assert plain.nbytes() == mem_p["map_bytes"] + mem_p["label_cache_bytes"]


def test_query_always_returns_best_guesses(encoder):
    m = mapper_with(encoder, query_threshold=1.0)  # no group can pass: falls back to best voxels
    m.process(wall_frame(m))
    r = m.query(["door"], top_k=4)
    assert len(r.candidates) == 4 and all(c.voxels == 1 for c in r.candidates)
    scores = [c.score for c in r.candidates]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="empty"):
        mapper_with(encoder).query(["door"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"quaternion": np.array([0, 0, 0, 3.0])}, "unit"),
        ({"depth_encoding": "8UC1"}, "encoding"),
        ({"camera_size": (200, 100)}, "aspect"),
        ({"depth": np.full((50, 50), 1000, np.uint16)}, "registered"),
    ],
)
def test_make_frame_refuses_bad_input(encoder, kw, match):
    m = mapper_with(encoder)
    args = {"rgb": np.zeros((96, 128, 3), np.uint8), "depth": np.full((96, 128), 1000, np.uint16),
            "depth_encoding": "16UC1", "K": np.diag([100.0, 100.0, 1.0]), "camera_size": (128, 96),
            "position": np.zeros(3), "quaternion": np.array([0, 0, 0, 1.0])}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        m.make_frame(args["rgb"], args["depth"], args["depth_encoding"], args["K"], args["camera_size"],
                     args["position"], args["quaternion"])


def test_load_keeps_the_map_on_incompatible_files(encoder, tmp_path):
    m = mapper_with(encoder)
    m.process(wall_frame(m))
    m.save(tmp_path / "a.rsmap")
    n = len(m)
    other = mapper_with(encoder, mode="probabilities")
    other.process(wall_frame(other))
    other.save(tmp_path / "probs.rsmap")
    with pytest.raises(ValueError, match="mode"):
        m.load(tmp_path / "probs.rsmap")
    (tmp_path / "bad.rsmap").write_bytes(b"junk")
    with pytest.raises(ValueError):
        m.load(tmp_path / "bad.rsmap")
    assert len(m) == n
    m.reset()
    assert m.load(tmp_path / "a.rsmap") == n


def test_load_refuses_files_that_do_not_match_the_running_config(encoder, tmp_path):
    from radseg_core.map_io import MapFileError

    m = mapper_with(encoder)
    m.process(wall_frame(m))
    before = (len(m), m.map.values().clone())
    for name, kw, match in (
        ("vs.rsmap", {"voxel_size": 0.1}, "voxel size"),
        ("frame.rsmap", {"frame_id": "utm"}, "frame 'utm'"),
        ("probs.rsmap", {"mode": "probabilities"}, "mode"),
    ):
        other = mapper_with(encoder, **kw)
        other.process(wall_frame(other))
        other.save(tmp_path / name)
        with pytest.raises(MapFileError, match=match):
            m.load(tmp_path / name)
        assert len(m) == before[0] and np.array_equal(m.map.values().numpy(), before[1].numpy())
    other = mapper_with(encoder)
    other.process(wall_frame(other))
    other.map.metadata["model"] = "c-radio_v3-g"
    other.save(tmp_path / "model.rsmap")
    with pytest.raises(MapFileError, match="model"):
        m.load(tmp_path / "model.rsmap")
    assert m.load(tmp_path / "frame.rsmap", adopt_frame=True) > 0 and m.config.frame_id == "utm"


def test_out_of_range_points_are_reported_per_frame(encoder):
    m = mapper_with(encoder, voxel_size=0.0001)  # key range +-105 m: a wall 1.5 m away fits ...
    out = m.process(wall_frame(m))
    assert out.out_of_range == 0 and out.points > 0
    far = wall_frame(m, x=500.0)  # ... a wall 500 m from the first frame's local origin does not
    with pytest.warns(RuntimeWarning, match="key range"):
        out = m.process(far)
    assert out.points == 0 and out.out_of_range == 96 * 128


def test_load_places_a_map_from_another_frame(encoder, tmp_path):
    from radseg_core.map_io import MapFileError

    odom = mapper_with(encoder, frame_id="odom")
    odom.process(wall_frame(odom))
    odom.save(tmp_path / "odom.rsmap")
    T = np.eye(4)
    T[:3, 3] = (1.0, -2.0, 0.5)  # whole voxels at 5 cm: an exact shift
    m = mapper_with(encoder)
    m.process(wall_frame(m, x=0.3))
    before = m.map.values().clone()
    asked = []

    def refuse(frame: str) -> np.ndarray:
        asked.append(frame)
        raise MapFileError(f"no transform from '{frame}'")

    with pytest.raises(MapFileError, match="no transform from 'odom'"):
        m.load(tmp_path / "odom.rsmap", T_map_file=refuse)
    assert asked == ["odom"] and torch.equal(m.map.values(), before)
    with pytest.raises(MapFileError, match="orthonormal"):
        m.load(tmp_path / "odom.rsmap", T_map_file=np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="exclude"):
        m.load(tmp_path / "odom.rsmap", T_map_file=T, adopt_frame=True)
    assert torch.equal(m.map.values(), before) and m.config.frame_id == "map"

    assert m.load(tmp_path / "odom.rsmap", T_map_file=lambda frame: T) == len(odom)
    info = m.last_load
    assert (info.file_frame, info.frame_id, info.adopted) == ("odom", "map", False)
    assert info.placement.exact and info.placement.merged == 0
    assert m.map.metadata["frame_id"] == "map" and m.config.frame_id == "map"
    np.testing.assert_allclose(np.sort(m.map.centers(torch.float64).numpy(), axis=0),
                               np.sort(odom.map.centers(torch.float64).numpy() + T[:3, 3], axis=0), atol=1e-9)
    # a callable is asked only when the frames differ; an array is applied as given
    m.save(tmp_path / "map.rsmap")
    assert m.load(tmp_path / "map.rsmap", T_map_file=refuse) > 0 and m.last_load.placement is None
    assert asked == ["odom"]
    m.load(tmp_path / "map.rsmap", T_map_file=np.eye(4))
    assert m.last_load.placement is not None and m.last_load.placement.exact

"""Map persistence: exact round trips, atomic writes, clear errors on bad files, PLY export."""

from __future__ import annotations

import functools
import json
import os
import zipfile

import numpy as np
import pytest
import torch

import radseg_core.voxel_map.map as voxel_map_module
from radseg_core.map_io import FORMAT_VERSION, MapFileError, export_ply, load_map, save_map
from radseg_core.voxel_map import VoxelMap
from radseg_core.voxel_map.slot_store import SlotStore


@pytest.fixture(autouse=True, params=["chunks-default", "chunks-tiny"])
def _chunking(request, monkeypatch):
    """Every test runs twice: default chunks, and 4-row chunks with doubling every 4 chunks, so gathers,
    scatters, moves and merges across many chunks meet the same reference results."""
    if request.param == "chunks-tiny":
        monkeypatch.setattr(voxel_map_module, "SlotStore", functools.partial(SlotStore, min_rows=4, max_chunks=4))



def build_map(dtype=torch.float16, mode="features", dim=12, n=800, seed=0) -> VoxelMap:
    g = torch.Generator().manual_seed(seed)
    vm = VoxelMap(dim=dim, mode=mode, dtype=dtype, max_hits=50.0, max_voxels=10_000)
    for _ in range(3):
        p = torch.rand(n, 3, generator=g)
        v = torch.rand(n, dim, generator=g)
        c = torch.randint(0, 256, (n, 3), generator=g, dtype=torch.uint8)
        vm.integrate_points(p, v, c)
    vm.metadata.update(model="c-radio_v3-b", classes=["ignore", "chair", "table"], frame_id="map")
    return vm


def assert_maps_equal(a: VoxelMap, b: VoxelMap):
    assert (a.voxel_size, a.mode, a.dim, a.dtype, a.max_hits, a.max_voxels) == (
        b.voxel_size,
        b.mode,
        b.dim,
        b.dtype,
        b.max_hits,
        b.max_voxels,
    )
    assert a.metadata == b.metadata and a.frames_integrated == b.frames_integrated
    assert torch.equal(a.keys(), b.keys())
    assert torch.equal(a.values(), b.values())
    assert torch.equal(a.colors(), b.colors())
    assert torch.equal(a.hits(), b.hits())
    assert torch.equal(a.last_seen(), b.last_seen())


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [
        (torch.float16, "features"),
        (torch.float32, "features"),
        (torch.bfloat16, "features"),
        (torch.float32, "probabilities"),
    ],
)
def test_round_trip_is_exact(tmp_path, dtype, mode):
    vm = build_map(dtype=dtype, mode=mode)
    path = save_map(vm, tmp_path / "m.npz")
    loaded = load_map(path)
    assert_maps_equal(vm, loaded)
    # The loaded map keeps integrating exactly like the original (working-set rows are saved too).
    p, v = torch.rand(200, 3), torch.rand(200, vm.dim)
    vm.integrate_points(p, v)
    loaded.integrate_points(p, v)
    assert_maps_equal(vm, loaded)


def test_empty_map_round_trip(tmp_path):
    vm = VoxelMap(dim=4)
    assert len(load_map(save_map(vm, tmp_path / "e.npz"))) == 0


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "m.npz"
    save_map(build_map(seed=1), path)
    before = path.read_bytes()
    vm = build_map(seed=2)
    vm.metadata["bad"] = object()  # not JSON: the save fails before touching the file
    with pytest.raises(ValueError, match="JSON"):
        save_map(vm, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_truncated_file_raises_map_file_error(tmp_path):
    path = save_map(build_map(), tmp_path / "m.npz")
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"t{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(MapFileError):
            load_map(bad)


def test_corrupt_byte_is_detected(tmp_path):
    vm = build_map(dtype=torch.float32)
    path = save_map(vm, tmp_path / "m.npz")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("values.npy")
    # flip a byte in the middle of the stored (uncompressed) values payload: the zip CRC catches it
    data[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(MapFileError, match="corrupt"):
        load_map(bad)


def _rewrite(path, out, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    for k, v in changes.items():
        if k in header:
            header[k] = v
        else:
            arrays[k] = v
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": FORMAT_VERSION + 1}, "version"),
        ({"format": "something_else"}, "not a radseg voxel map"),
        ({"dtype": "int8"}, "header"),
        ({"hits": np.zeros(3, np.float32)}, "hits"),
        ({"values": np.zeros((5, 3), np.float16)}, "values"),
    ],
)
def test_incompatible_files_raise(tmp_path, change, match):
    path = save_map(build_map(), tmp_path / "m.npz")
    bad = _rewrite(path, tmp_path / "bad.npz", **change)
    with pytest.raises(MapFileError, match=match):
        load_map(bad)


def test_duplicate_keys_and_non_map_files_raise(tmp_path):
    path = save_map(build_map(), tmp_path / "m.npz")
    with np.load(path) as z:
        keys = z["keys"].copy()
    keys[1] = keys[0]
    with pytest.raises(MapFileError, match="duplicate"):
        load_map(_rewrite(path, tmp_path / "dup.npz", keys=keys))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(MapFileError):
        load_map(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(MapFileError, match="missing"):
        load_map(tmp_path / "other.npz")
    assert issubclass(MapFileError, ValueError)


def test_export_ply_rgb_label_heat(tmp_path):
    o3d = pytest.importorskip("open3d")
    vm = build_map(mode="probabilities", dim=3, dtype=torch.float32)
    n = len(vm)
    for color_by, kwargs in (("rgb", {}), ("label", {}), ("heat", {"scores": np.linspace(0, 1, n)})):
        path = export_ply(vm, tmp_path / f"{color_by}.ply", color_by=color_by, **kwargs)
        pcd = o3d.t.io.read_point_cloud(str(path))
        pos = pcd.point.positions.numpy()
        np.testing.assert_allclose(pos, vm.centers().numpy(), atol=1e-6)
        assert "colors" in pcd.point
    pcd = o3d.t.io.read_point_cloud(str(tmp_path / "label.ply"))
    # PLY labels follow the images' and clouds' convention: 0 = ignore, k + 1 = classes[k]
    np.testing.assert_array_equal(pcd.point.label.numpy().reshape(-1), vm.labels().numpy() + 1)
    rgb = o3d.t.io.read_point_cloud(str(tmp_path / "rgb.ply")).point.colors.numpy()
    np.testing.assert_array_equal(rgb, vm.colors().numpy())
    with pytest.raises(ValueError, match="scores"):
        export_ply(vm, tmp_path / "x.ply", color_by="heat")
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))


def _member(path, name):
    with np.load(path) as z:
        return z[name].copy()


def _bad_values(path, value):
    v = _member(path, "values")
    v[3, 2] = value
    return {"values": v}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: _bad_values(p, np.nan), "NaN or inf"),
        (lambda p: _bad_values(p, np.inf), "NaN or inf"),
        (lambda p: {"values": np.full_like(_member(p, "values"), np.nan)}, "NaN or inf"),
        (lambda p: {"colors": _member(p, "colors") * np.float16(np.inf)}, "NaN or inf"),
        (lambda p: {"colors": _member(p, "colors") + np.float16(300)}, r"\[0, 255\]"),
        (lambda p: {"values": _member(p, "values").astype(np.float32)}, "values must be float16"),
        (lambda p: {"values": _member(p, "values")[:, :5]}, "values must be float16"),
        (lambda p: {"hits": _member(p, "hits").astype(np.float32)}, "hits must be int32"),
        (lambda p: {"hits": -_member(p, "hits")}, "positive"),
        (lambda p: {"keys": _member(p, "keys").astype(np.int32)}, "keys must be int64"),
        (lambda p: {"keys": -_member(p, "keys")}, "keys out of range"),
        (lambda p: {"last_seen": _member(p, "last_seen") + 100}, "last_seen"),
        (lambda p: {"origin_voxel": [0.5, 0, 0]}, "origin_voxel"),
        (lambda p: {"residual_slots": _member(p, "residual_slots") + 10_000}, "residual"),
    ],
    ids=[
        "nan-value", "inf-value", "all-nan", "inf-colour", "colour-range", "values-dtype", "values-shape",
        "hits-dtype", "hits-negative", "keys-dtype", "keys-negative", "last-seen", "origin", "residual-slots",
    ],
)
def test_each_bad_file_is_refused_with_our_message(tmp_path, make, match):
    path = save_map(build_map(), tmp_path / "m.npz")
    with pytest.raises(MapFileError, match=match):
        load_map(_rewrite(path, tmp_path / "bad.npz", **make(path)))


def test_pickled_file_is_refused_without_numpys_advice(tmp_path):
    path = save_map(build_map(), tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["values"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(MapFileError) as exc:
        load_map(tmp_path / "pickled.npz")
    assert "pickle" in str(exc.value) and "trust" not in str(exc.value) and "allow_pickle" not in str(exc.value)


def test_version_1_file_with_float_hits_still_loads(tmp_path):
    vm = build_map()
    path = save_map(vm, tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("residual")}
    header = json.loads(arrays["header"].tobytes())
    header["version"] = 1
    del header["origin_voxel"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    arrays["hits"] = arrays["hits"].astype(np.float32)
    np.savez(tmp_path / "v1.npz", **arrays)
    loaded = load_map(tmp_path / "v1.npz")
    assert torch.equal(loaded.hits(), vm.hits()) and loaded.hits().dtype == torch.int32
    arrays["hits"] = arrays["hits"] + np.float32(0.5)
    np.savez(tmp_path / "v1frac.npz", **arrays)
    with pytest.raises(MapFileError, match="whole"):
        load_map(tmp_path / "v1frac.npz")


def test_fp16_residuals_of_maps_saved_before_fp32_rows_still_load(tmp_path):
    """Files written while the working set kept fp16 residuals ``(exact - stored) x 1024`` (first version
    of #17) load: the rows become ``stored + residual / 1024``, within an fp16 rounding of the residual."""
    vm = build_map()
    path = save_map(vm, tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    exact = {k: arrays[k].astype(np.float32) for k in ("residual_values", "residual_colors")}
    assert np.abs(exact["residual_values"]).max() > 0  # the map has something to compensate
    for k in exact:
        arrays[k] = (exact[k] * np.float32(1024)).astype(np.float16)
    np.savez(tmp_path / "old.npz", **arrays)
    loaded = load_map(tmp_path / "old.npz")
    slots, res, res_col = loaded.residuals()
    assert torch.equal(slots, torch.from_numpy(arrays["residual_slots"]))
    for got, want in ((res, exact["residual_values"]), (res_col, exact["residual_colors"])):
        want = torch.from_numpy(want)
        assert got.dtype == torch.float32
        assert torch.allclose(got, want, rtol=2**-10, atol=2**-34)  # one fp16 rounding of residual x 1024
    assert_maps_equal(vm, loaded)  # the stored means themselves are the file's


def test_far_origin_round_trip(tmp_path):
    vm = VoxelMap(dim=3, dtype=torch.float16)
    p = torch.rand(100, 3, dtype=torch.float64) + torch.tensor([4.0e5, 5.1e6, 30.0], dtype=torch.float64)
    vm.integrate_points(p, torch.rand(100, 3))
    assert vm.origin_voxel.abs().max() > 0
    loaded = load_map(save_map(vm, tmp_path / "m.npz"))
    assert torch.equal(loaded.voxel_indices(), vm.voxel_indices())
    assert torch.equal(loaded.origin_voxel, vm.origin_voxel)

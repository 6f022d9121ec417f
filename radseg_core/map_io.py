"""Save, load and export VoxelMaps.

Container: a NumPy ``.npz`` (zip of plain arrays, read with ``allow_pickle=False``, so loading a
file can never execute code). Members:

* ``header``: UTF-8 JSON as uint8 — ``{"format": "radseg_voxel_map", "version": 1, "voxel_size",
  "mode", "dim", "dtype", "max_voxels", "max_hits", "evict_fraction", "frames_integrated",
  "origin_voxel" (version 2),
  "metadata": {...}}`` (metadata holds model, classes, frame_id and anything JSON-serialisable).
* ``keys`` int64 (N,), ``values`` (N, D) and ``colors`` (N, 3) in the storage dtype (bfloat16 as its
  uint16 bit pattern), ``hits`` int32 (N,) (version 1 files: float32 whole numbers), ``last_seen``
  int32 (N,).

Loading checks everything before anything is used: member shapes and dtypes against the header,
finite values and colours, colours in [0, 255], unique keys, positive whole hit counts. A file
holding pickled objects is refused with our own message (it is never unpickled).

Writes are atomic (temp file in the target directory, fsync, ``os.replace``): a crash leaves the old
file intact. Any unreadable, truncated, corrupt (zip CRC) or incompatible file raises
:class:`MapFileError` and changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from radseg_core.visual import heat_colors, label_palette
from radseg_core.voxel_map import VoxelMap

FORMAT_NAME = "radseg_voxel_map"
FORMAT_VERSION = 2  # 2: int32 hit counts
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
_MEMBERS = ("header", "keys", "values", "colors", "hits", "last_seen")
_RESIDUAL_MEMBERS = ("residual_slots", "residual_values", "residual_colors")  # optional (version 2)


class MapFileError(ValueError):
    """A map file that cannot be used: unreadable, truncated, corrupt, invalid, or incompatible with the
    running configuration (voxel size, mode, feature size, model, frame)."""


def _atomic_write(path: Path, write: Callable[[str], None], suffix: str) -> None:
    """Run ``write(tmp_path)`` then atomically move the result to ``path``; clean up on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return t.view(torch.uint16).numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _as_float32(a: np.ndarray) -> np.ndarray:
    """Stored floats as float32 (bfloat16 is kept as its uint16 bit pattern)."""
    if a.dtype == np.uint16:
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32, copy=False)


def save_map(vmap: VoxelMap, path: str | os.PathLike) -> Path:
    """Write ``vmap`` to ``path`` (``.npz`` container, atomic). Returns the path."""
    path = Path(path)
    dtype_name = {v: k for k, v in _DTYPES.items()}[vmap.dtype]
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "voxel_size": vmap.voxel_size,
        "grid": vmap.grid,
        "mode": vmap.mode,
        "dim": vmap.dim,
        "dtype": dtype_name,
        "max_voxels": vmap.max_voxels,
        "max_hits": vmap.max_hits,
        "evict_fraction": vmap.evict_fraction,
        "frames_integrated": vmap.frames_integrated,
        "origin_voxel": vmap.origin_voxel.tolist(),
        "metadata": vmap.metadata,
    }
    try:
        header_bytes = json.dumps(header).encode("utf-8")
    except TypeError as e:
        raise ValueError(f"map metadata must be JSON-serialisable: {e}") from e
    arrays = {
        "header": np.frombuffer(header_bytes, dtype=np.uint8),
        "keys": _to_numpy(vmap.keys()),
        "colors": _to_numpy(vmap.color_means()),
        "hits": _to_numpy(vmap.hits()),
        "last_seen": _to_numpy(vmap.last_seen()),
    }
    res_slots, res, res_col = vmap.residuals()
    arrays.update(
        residual_slots=_to_numpy(res_slots), residual_values=_to_numpy(res), residual_colors=_to_numpy(res_col)
    )

    def write(tmp: str) -> None:
        # The same container np.savez writes (stored zip of .npy members); ``values`` is streamed chunk by
        # chunk, so saving never holds a second copy of the map's features.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fid:
                    np.lib.format.write_array(fid, np.ascontiguousarray(arr), allow_pickle=False)
            with zf.open("values.npy", "w", force_zip64=True) as fid:
                stored = _to_numpy(torch.empty(0, dtype=vmap.dtype)).dtype  # bfloat16 as uint16, as above
                np.lib.format.write_array_header_2_0(
                    fid, {"descr": np.lib.format.dtype_to_descr(stored), "fortran_order": False,
                          "shape": (len(vmap), vmap.dim)},
                )
                for block in vmap.value_blocks():
                    fid.write(_to_numpy(block).tobytes())

    _atomic_write(path, write, ".npz")
    return path


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [m for m in _MEMBERS if m not in z.files]
            if missing:
                raise MapFileError(f"{path}: not a radseg voxel map (missing {missing})")
            out = {m: z[m] for m in _MEMBERS}
            out.update({m: z[m] for m in _RESIDUAL_MEMBERS if m in z.files})
            return out
    except MapFileError:
        raise
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as e:
        if "pickle" in str(e):  # numpy's message would advise unpickling; we never do
            raise MapFileError(
                f"{path}: holds Python objects (pickle); radseg map files contain plain arrays only, "
                "so this is not one of ours and is refused"
            ) from None
        raise MapFileError(
            f"{path}: unreadable, truncated or corrupt map file ({type(e).__name__}: {e})"
        ) from e


def load_map(
    path: str | os.PathLike, device: str | torch.device = "cpu", residual_rows: int = 131072
) -> VoxelMap:
    """Read a map written by :func:`save_map` into a new VoxelMap (the caller swaps it in on success).

    ``residual_rows`` is the running configuration's drift-compensation working set (not a file property).
    """
    path = Path(path)
    z = _read(path)
    try:
        header = json.loads(z["header"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MapFileError(f"{path}: map header is not valid JSON") from e
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt != FORMAT_NAME:
        raise MapFileError(f"{path}: not a radseg voxel map (format {fmt!r})")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise MapFileError(
            f"{path}: map format version {version!r} not supported (this build reads 1..{FORMAT_VERSION})"
        )
    try:
        dim, dtype = int(header["dim"]), _DTYPES[header["dtype"]]
        mode = header["mode"]
        vmap = VoxelMap(
            voxel_size=float(header["voxel_size"]),
            mode=mode,
            dim=dim,
            dtype=dtype,
            device=device,
            max_voxels=header["max_voxels"],
            max_hits=header["max_hits"],
            evict_fraction=float(header["evict_fraction"]),
            residual_rows=residual_rows,
            grid=header.get("grid", "floor"),  # files before the grid option were all floor-binned
        )
        frames = int(header["frames_integrated"])
        origin = header.get("origin_voxel", [0, 0, 0])
        if not (isinstance(origin, list) and len(origin) == 3
                and all(type(o) is int and abs(o) < 2**53 for o in origin)):
            raise ValueError(f"origin_voxel must be 3 integers, got {origin!r}")
        metadata = dict(header["metadata"])
    except (KeyError, TypeError, ValueError) as e:
        raise MapFileError(f"{path}: invalid map header ({e})") from e
    keys, values, colors, hits, last_seen = (z[m] for m in _MEMBERS[1:])
    n = keys.shape[0] if keys.ndim == 1 else -1
    want_np = (
        np.uint16
        if dtype == torch.bfloat16
        else {torch.float16: np.float16, torch.float32: np.float32}[dtype]
    )
    checks = [
        (keys.dtype == np.int64 and keys.ndim == 1, "keys must be int64 (N,)"),
        (
            values.dtype == want_np and values.shape == (n, dim),
            f"values must be {np.dtype(want_np)} ({n}, {dim})",
        ),
        (colors.dtype == want_np and colors.shape == (n, 3), f"colors must be ({n}, 3)"),
        (
            hits.dtype == (np.int32 if version >= 2 else np.float32) and hits.shape == (n,),
            f"hits must be {'int32' if version >= 2 else 'float32'} ({n},)",
        ),
        (last_seen.dtype == np.int32 and last_seen.shape == (n,), f"last_seen must be int32 ({n},)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise MapFileError(f"{path}: {msg}")
    if n and np.unique(keys).shape[0] != n:
        raise MapFileError(f"{path}: duplicate voxel keys")
    if n and not (np.isfinite(hits).all() and (hits > 0).all() and (hits <= 2**31 - 1).all()):
        raise MapFileError(f"{path}: hit counts must be finite and positive")
    if n and version < 2 and not (np.floor(hits) == hits).all():
        raise MapFileError(f"{path}: hit counts must be whole numbers")
    hits = hits.astype(np.int32)
    for name, a in (("values", values), ("colors", colors)):
        if n and not np.isfinite(_as_float32(a)).all():
            raise MapFileError(f"{path}: {name} contain NaN or inf; refusing a map that would score NaN")
    col = _as_float32(colors)
    if n and not ((col >= 0) & (col <= 255)).all():
        raise MapFileError(f"{path}: colours must lie in [0, 255]")
    if n and not (keys >= 0).all():
        raise MapFileError(f"{path}: voxel keys out of range")
    if n and not (last_seen.min() >= 0 and last_seen.max() <= frames):
        raise MapFileError(f"{path}: last_seen must lie in [0, frames_integrated={frames}]")

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.view(torch.bfloat16) if dtype == torch.bfloat16 and a.dtype == np.uint16 else t

    residuals = None
    if all(m in z for m in _RESIDUAL_MEMBERS) and dtype != torch.float32:
        rs, rv, rc = (z[m] for m in _RESIDUAL_MEMBERS)
        r = rs.shape[0] if rs.ndim == 1 else -1
        ok = (
            rs.dtype == np.int64 and r >= 0 and rv.dtype in (want_np, np.float32) and rv.shape == (r, dim)
            and rc.dtype == rv.dtype and rc.shape == (r, 3)
            and (r == 0 or (rs.min() >= 0 and rs.max() < n and np.unique(rs).shape[0] == r))
            and np.isfinite(_as_float32(rv)).all() and np.isfinite(_as_float32(rc)).all()
        )
        if not ok:
            raise MapFileError(f"{path}: residual arrays do not match the map")
        residuals = (torch.from_numpy(rs), tensor(rv), tensor(rc))
    vmap._restore(
        tensor(keys), tensor(values), tensor(colors), tensor(hits), tensor(last_seen), frames, residuals,
        tuple(origin),
    )
    vmap.metadata = metadata
    return vmap


def write_ply(path: str | os.PathLike, xyz: np.ndarray, colors: np.ndarray, **attrs: np.ndarray) -> Path:
    """Atomic PLY point cloud: float positions, uchar colours and extra per-point attributes (open3d)."""
    try:
        import open3d as o3d
    except ImportError as e:
        raise ImportError(
            "PLY export needs open3d (pip install open3d-cpu; Debian also needs libusb-1.0-0)"
        ) from e
    n = len(xyz)
    pcd = o3d.t.geometry.PointCloud()
    pcd.point.positions = o3d.core.Tensor(np.ascontiguousarray(xyz, dtype=np.float32).reshape(n, 3))
    pcd.point.colors = o3d.core.Tensor(np.ascontiguousarray(colors, dtype=np.uint8).reshape(n, 3))
    for name, a in attrs.items():
        a = np.asarray(a)
        a = a.astype(np.int32) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32)
        pcd.point[name] = o3d.core.Tensor(np.ascontiguousarray(a).reshape(n, 1))
    path = Path(path)

    def write(tmp: str) -> None:
        if not o3d.t.io.write_point_cloud(tmp, pcd):
            raise OSError(f"open3d failed to write {tmp}")

    _atomic_write(path, write, ".ply")
    return path


def export_ply(
    vmap: VoxelMap,
    path: str | os.PathLike,
    color_by: str = "rgb",
    scores=None,
    palette: np.ndarray | None = None,
) -> Path:
    """Write voxel centres as a PLY point cloud (uchar colours + ``hits``, ``label``, ``score`` attributes).

    ``color_by``: "rgb" (mean colour), "label" (probabilities mode, palette colours) or "heat"
    (``scores`` (N,), e.g. one row of a QueryResult). Needs open3d, imported only here.
    """
    if color_by not in ("rgb", "label", "heat"):
        raise ValueError(f"color_by must be 'rgb', 'label' or 'heat', got {color_by!r}")
    n = len(vmap)
    attrs: dict[str, np.ndarray] = {"hits": vmap.hits().cpu().numpy()}
    if color_by == "rgb":
        colors = vmap.colors().cpu().numpy()
    elif color_by == "label":
        labels = vmap.labels().cpu().numpy() + 1  # 0 = ignore, k + 1 = classes[k], as in images and clouds
        pal = label_palette(vmap.dim + 1) if palette is None else np.asarray(palette, dtype=np.uint8)
        colors = pal[labels]
        attrs["label"] = labels
    else:
        if scores is None:
            raise ValueError("color_by='heat' needs scores (N,)")
        s = np.asarray(scores, dtype=np.float32).reshape(-1)
        if s.shape[0] != n:
            raise ValueError(f"scores must have one value per voxel ({n}), got {s.shape[0]}")
        colors = heat_colors(s)
        attrs["score"] = s
    return write_ply(path, vmap.centers().cpu().numpy(), colors, **attrs)

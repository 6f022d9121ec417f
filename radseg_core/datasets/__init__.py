"""Readers for RGB-D sequences, each an indexable iterable of :class:`~radseg_core.types.Frame`.

``open_dataset`` picks the reader from the path's layout, so tools take one ``--input`` argument:

=================  =================================================================
rosbag2            directory with ``metadata.yaml``, or a ``.mcap`` / ``.db3`` file
Replica            ``results/frame*.jpg``, ``results/depth*.png``, ``traj.txt`` (NICE-SLAM)
ScanNet            ``color/ depth/ pose/ intrinsic/`` (SensReader export)
TUM RGB-D          ``rgb.txt``, ``depth.txt``, ``groundtruth.txt`` (also our written folders)
``"sample"``       the Motorcycle sequence (real scene, re-rendered), generated on the fly
``"synthetic-room"``  procedural labelled room, generated on the fly
=================  =================================================================

All readers take ``stride``, ``max_frames`` and ``resize`` (rgb shorter side; ``K`` follows) and expose
``len()``, ``.name``, ``.classes``; labelled ones ``.labels(i)`` and ``.gt_points()``.
"""

from __future__ import annotations

from pathlib import Path

from radseg_core.datasets._base import FrameDataset, resize_frame
from radseg_core.datasets.replica import ReplicaDataset, is_replica
from radseg_core.datasets.rosbag import RosbagDataset, is_rosbag
from radseg_core.datasets.sample import MotorcycleSample, export_sample
from radseg_core.datasets.scannet import ScanNetDataset, is_scannet
from radseg_core.datasets.synthetic_room import SyntheticRoom
from radseg_core.datasets.tum import TUMDataset, is_tum
from radseg_core.datasets.writers import write_folder, write_rosbag

BUILTIN = {"sample": MotorcycleSample, "synthetic-room": SyntheticRoom}

__all__ = [
    "FrameDataset", "MotorcycleSample", "ReplicaDataset", "RosbagDataset", "ScanNetDataset", "SyntheticRoom",
    "TUMDataset", "detect_kind", "export_sample", "open_dataset", "resize_frame", "write_folder",
    "write_rosbag",
]


def detect_kind(path_or_name: str | Path) -> str:
    """``"sample"``, ``"synthetic-room"``, ``"rosbag"``, ``"replica"``, ``"scannet"`` or ``"tum"``."""
    if str(path_or_name) in BUILTIN:
        return str(path_or_name)
    p = Path(path_or_name)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist (built-in names: {sorted(BUILTIN)})")
    tests = (("rosbag", is_rosbag), ("replica", is_replica), ("scannet", is_scannet), ("tum", is_tum))
    for kind, test in tests:
        if test(p):
            return kind
    raise ValueError(
        f"cannot tell what {p} is: expected a rosbag2 (metadata.yaml, .mcap, .db3), a Replica folder "
        "(results/ + traj.txt), a ScanNet export (color/ depth/ pose/ intrinsic/) or a TUM folder "
        "(rgb.txt + depth.txt)"
    )


def open_dataset(path_or_name: str | Path, **kw) -> FrameDataset:
    """Open a recording or built-in sequence; ``kw`` go to the reader (``stride``, ``resize``, topics ...)."""
    kind = detect_kind(path_or_name)
    if kind in BUILTIN:
        return BUILTIN[kind](**kw)
    readers = {"rosbag": RosbagDataset, "replica": ReplicaDataset, "scannet": ScanNetDataset,
               "tum": TUMDataset}
    return readers[kind](path_or_name, **kw)

"""Each reader on tiny recordings written here, in the dataset's own layout, then read back."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from radseg_core.datasets import (
    ReplicaDataset,
    RosbagDataset,
    ScanNetDataset,
    TUMDataset,
    detect_kind,
    open_dataset,
    write_folder,
    write_rosbag,
)
from radseg_core.datasets._base import resize_frame
from radseg_core.datasets.replica import REPLICA_K
from radseg_core.datasets.tum import TUM_INTRINSICS, associate
from radseg_core.datasets.writers import rotation_to_quaternion
from radseg_core.geometry import pose_to_matrix
from radseg_core.types import Frame

H, W = 12, 16
K = np.array([[20.0, 0.0, 7.5], [0.0, 21.0, 5.5], [0.0, 0.0, 1.0]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose(t: float) -> np.ndarray:
    """A smooth trajectory: 0.5 m/s along x, 0.3 rad/s about z."""
    T = np.eye(4)
    T[:3, :3] = rot_z(0.3 * t)
    T[:3, 3] = [0.5 * t, 0.1, 1.2]
    return T


def rgb_image(i: int) -> np.ndarray:
    """Smooth colours (JPEG keeps them within a few levels) that differ per frame."""
    v, u = np.mgrid[0:H, 0:W]
    return np.stack([u * 8 + 10 * i, v * 10 + 20, np.full_like(u, 100 + 5 * i)], -1).astype(np.uint8)


def depth_image(i: int) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W]
    d = (1.0 + 0.05 * u + 0.02 * v + 0.1 * i).astype(np.float32)
    d[0, 0] = 0.0  # one invalid pixel
    return d


def frames(n: int, dt: float = 0.1, t0: float = 100.0) -> list[Frame]:
    return [Frame(rgb=rgb_image(i), depth=depth_image(i), K=K.copy(), T_world_cam=pose(i * dt),
                  stamp=t0 + i * dt) for i in range(n)]


# ----------------------------------------------------------------------------------------------- Replica


def write_replica(root, n: int):
    (root / "results").mkdir(parents=True)
    res = root / "results"
    for i in range(n):
        cv2.imwrite(str(res / f"frame{i:06d}.jpg"), cv2.cvtColor(rgb_image(i), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(res / f"depth{i:06d}.png"), np.round(depth_image(i) * 6553.5).astype(np.uint16))
    np.savetxt(root / "traj.txt", np.stack([pose(i * 0.1).reshape(-1) for i in range(n)]))


def test_replica(tmp_path):
    root = tmp_path / "room0"
    write_replica(root, 5)
    assert detect_kind(root) == "replica"
    ds = open_dataset(root)
    assert isinstance(ds, ReplicaDataset) and len(ds) == 5 and ds.classes is None
    np.testing.assert_allclose(ds[0].K, REPLICA_K)
    f = ds[3]
    assert f.rgb.dtype == np.uint8 and f.rgb.shape == (H, W, 3)
    assert np.abs(f.rgb.astype(int) - rgb_image(3)).mean() < 4  # JPEG, and RGB (not BGR) order
    np.testing.assert_allclose(f.depth, depth_image(3), atol=1 / 6553.5)
    assert f.depth[0, 0] == 0
    np.testing.assert_allclose(f.T_world_cam, pose(0.3), atol=1e-12)
    strided = ReplicaDataset(root, stride=2, max_frames=2, K=K)
    assert len(strided) == 2
    np.testing.assert_allclose(strided[1].T_world_cam, pose(0.2), atol=1e-12)
    np.testing.assert_allclose(strided[1].K, K)
    with pytest.raises(IndexError):
        strided[2]


# ----------------------------------------------------------------------------------------------- ScanNet


def write_scannet(root, n: int, bad_pose: int):
    for d in ("color", "depth", "pose", "intrinsic", "label-filt"):
        (root / d).mkdir(parents=True)
    Kc = np.eye(4)
    Kc[:3, :3] = [[40.0, 0, 15.5], [0, 42.0, 11.5], [0, 0, 1]]
    Kd = np.eye(4)
    Kd[:3, :3] = K
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", Kc)
    np.savetxt(root / "intrinsic" / "intrinsic_depth.txt", Kd)
    for i in range(n):
        big = cv2.resize(rgb_image(i), (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / "color" / f"{i}.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "depth" / f"{i}.png"), np.round(depth_image(i) * 1000).astype(np.uint16))
        T = np.full((4, 4), -np.inf) if i == bad_pose else pose(i * 0.1)
        np.savetxt(root / "pose" / f"{i}.txt", T)
        lab = np.full((2 * H, 2 * W), i % 3, np.uint16)
        cv2.imwrite(str(root / "label-filt" / f"{i}.png"), lab)


def test_scannet(tmp_path):
    root = tmp_path / "scene0000_00"
    write_scannet(root, 12, bad_pose=2)  # 12 frames: file names 10, 11 sort after 9 numerically
    assert detect_kind(root) == "scannet"
    ds = open_dataset(root)
    assert isinstance(ds, ScanNetDataset)
    assert len(ds) == 11  # the -inf pose frame is skipped
    f = ds[2]  # frame 3 (2 was skipped)
    assert f.rgb.shape == (H, W, 3) and f.depth.shape == (H, W)  # colour brought to the depth grid
    np.testing.assert_allclose(f.K, K)  # and the depth intrinsics used
    np.testing.assert_allclose(f.depth, depth_image(3), atol=1e-3)
    np.testing.assert_allclose(f.T_world_cam, pose(0.3), atol=1e-6)
    assert np.abs(f.rgb.astype(int) - rgb_image(3)).mean() < 6
    np.testing.assert_allclose(ds[10].T_world_cam, pose(1.1), atol=1e-6)
    assert ds.labels(2).shape == (H, W) and (ds.labels(2) == 0).all()  # 3 % 3
    assert (ds.labels(3) == 1).all()


# ------------------------------------------------------------------------------------------------- TUM


def write_tum(root, n: int, name_kind: str = "freiburg1"):
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_lines, depth_lines = ["# color images", "# file: x", "# timestamp filename"], ["# depth"]
    for i in range(n):
        t = 1305031102.175304 + i * 0.1
        cv2.imwrite(str(root / "rgb" / f"{t:.6f}.png"), cv2.cvtColor(rgb_image(i), cv2.COLOR_RGB2BGR))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        if i == 2:
            continue  # no depth image near frame 2: it must be dropped
        td = t + 0.012  # depth clock 12 ms late
        cv2.imwrite(str(root / "depth" / f"{td:.6f}.png"), np.round(depth_image(i) * 5000).astype(np.uint16))
        depth_lines.append(f"{td:.6f} depth/{td:.6f}.png")
    gt = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
    t0 = 1305031102.175304
    for k in range(-5, int(n * 0.1 / 0.0097) + 5):  # mocap at ~103 Hz, not aligned with the camera
        t = t0 + k * 0.0097
        T = pose(t - t0)
        q = rotation_to_quaternion(T[:3, :3])
        gt.append(f"{t:.6f} " + " ".join(f"{v:.7f}" for v in (*T[:3, 3], *q)))
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (root / "groundtruth.txt").write_text("\n".join(gt) + "\n")


def test_tum(tmp_path):
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    write_tum(root, 6)
    assert detect_kind(root) == "tum"
    ds = open_dataset(root)
    assert isinstance(ds, TUMDataset)
    assert len(ds) == 5  # frame 2 had no depth
    fx, fy, cx, cy = TUM_INTRINSICS["freiburg1"]
    np.testing.assert_allclose(ds[0].K, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    f = ds[2]  # frame 3
    assert f.stamp == pytest.approx(1305031102.175304 + 0.3, abs=1e-6)
    np.testing.assert_allclose(f.depth, depth_image(3), atol=2e-4)
    np.testing.assert_array_equal(f.rgb, rgb_image(3))
    # pose interpolated between mocap samples at the rgb stamp (rotation about z is slerp-exact)
    np.testing.assert_allclose(f.T_world_cam, pose(0.3), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no rgb/depth pairs"):
        TUMDataset(root, max_dt=0.005)  # 12 ms offset: nothing associates


def test_associate_is_one_to_one():
    a = np.array([0.0, 0.01, 1.0])
    b = np.array([0.005, 2.0])
    assert associate(a, b, 0.02) == [(0, 0)]  # both a[0] and a[1] are close to b[0]; the closer wins


def test_folder_writer_roundtrip_via_tum_reader(tmp_path):
    fr = frames(4)
    labels = [np.full((H, W), i, np.int32) for i in range(4)]
    write_folder(fr, tmp_path / "seq", name="tiny", classes=["a", "b", "c"], labels=labels)
    meta = json.loads((tmp_path / "seq" / "camera.json").read_text())
    assert meta["depth_scale"] == 0.001
    ds = open_dataset(tmp_path / "seq")
    assert ds.name == "tiny" and ds.classes == ["a", "b", "c"] and len(ds) == 4
    for i, f in enumerate(ds):
        np.testing.assert_array_equal(f.rgb, fr[i].rgb)
        np.testing.assert_allclose(f.depth, fr[i].depth, atol=5e-4)  # millimetre PNG
        np.testing.assert_allclose(f.K, K)
        np.testing.assert_allclose(f.T_world_cam, fr[i].T_world_cam, atol=1e-7)
        assert f.stamp == pytest.approx(fr[i].stamp, abs=1e-6)
        np.testing.assert_array_equal(ds.labels(i), labels[i])


# --------------------------------------------------------------------------------------------- rosbag2


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_rosbag_roundtrip(tmp_path, storage):
    fr = frames(5)
    bag = write_rosbag(fr, tmp_path / "bag", storage=storage)
    assert detect_kind(bag) == "rosbag"
    ds = open_dataset(bag, stride=2)
    assert isinstance(ds, RosbagDataset) and len(ds) == 3
    assert ds.topics["rgb"] == "/camera/color/image_raw" and ds.topics["pose"] == "/camera/pose"
    for i, f in zip((0, 2, 4), ds, strict=True):
        np.testing.assert_array_equal(f.rgb, fr[i].rgb)
        np.testing.assert_allclose(f.depth, fr[i].depth, atol=5e-4)
        assert f.depth.dtype == np.float32 and f.depth[0, 0] == 0
        np.testing.assert_allclose(f.K, K)
        np.testing.assert_allclose(f.T_world_cam, fr[i].T_world_cam, atol=1e-9)
        assert f.stamp == pytest.approx(fr[i].stamp, abs=1e-6)
    ds.close()
    # a single storage file opens too
    files = list((tmp_path / "bag").glob("*.mcap" if storage == "mcap" else "*.db3"))
    assert len(files) == 1 and len(RosbagDataset(files[0])) == 5


def write_messy_bag(path):
    """Like a real driver: bgr8, 32FC1 depth 10 ms late, camera_info at 2x size, Odometry at 3x the rate
    in the body frame, an unrelated topic, and a second rgb camera unless told otherwise."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    Image, Info = T["sensor_msgs/msg/Image"], T["sensor_msgs/msg/CameraInfo"]
    Odom = T["nav_msgs/msg/Odometry"]
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    Pose, PwC, TwC = T["geometry_msgs/msg/Pose"], T["geometry_msgs/msg/PoseWithCovariance"], \
        T["geometry_msgs/msg/TwistWithCovariance"]
    Point, Quat, Twist, Vec = T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Quaternion"], \
        T["geometry_msgs/msg/Twist"], T["geometry_msgs/msg/Vector3"]
    String = T["std_msgs/msg/String"]

    def hdr(t, fid="cam"):
        sec = int(t)
        return Header(stamp=Time(sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id=fid)

    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as w:
        c_rgb = w.add_connection("/cam/image_color", Image.__msgtype__, typestore=ts)
        c_rgb2 = w.add_connection("/cam2/image_color", Image.__msgtype__, typestore=ts)
        c_d = w.add_connection("/cam/depth_registered", Image.__msgtype__, typestore=ts)
        c_info = w.add_connection("/cam/camera_info", Info.__msgtype__, typestore=ts)
        c_odom = w.add_connection("/odom", Odom.__msgtype__, typestore=ts)
        c_str = w.add_connection("/chatter", String.__msgtype__, typestore=ts)

        def put(conn, t, msg):
            w.write(conn, int(t * 1e9), ts.serialize_cdr(msg, msg.__msgtype__))

        for i in range(4):
            t = 50.0 + 0.1 * i
            bgr = np.ascontiguousarray(rgb_image(i)[..., ::-1])
            img = Image(header=hdr(t), height=H, width=W, encoding="bgr8", is_bigendian=0, step=W * 3,
                        data=bgr.reshape(-1))
            put(c_rgb, t, img)
            put(c_rgb2, t, img)
            d = depth_image(i)
            put(c_d, t + 0.01, Image(header=hdr(t + 0.01), height=H, width=W, encoding="32FC1",
                                     is_bigendian=0, step=W * 4, data=d.reshape(-1).view(np.uint8)))
            K2 = K.copy()
            K2[:2] = K2[:2] * 2 + np.array([[0, 0, 0.5], [0, 0, 0.5]])  # the same camera at 2x size
            put(c_info, t, Info(header=hdr(t), height=2 * H, width=2 * W, distortion_model="plumb_bob",
                                d=np.zeros(5), k=K2.reshape(-1), r=np.eye(3).reshape(-1),
                                p=np.zeros(12), binning_x=0, binning_y=0,
                                roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                                          width=0, do_rectify=False)))
            put(c_str, t, String(data="hi"))
        for k in range(-2, 16):
            t = 50.0 + k * 0.1 / 3
            P = pose(t - 50.0)
            q = rotation_to_quaternion(P[:3, :3])
            odom = Odom(header=hdr(t, "map"), child_frame_id="base",
                        pose=PwC(pose=Pose(position=Point(x=P[0, 3], y=P[1, 3], z=P[2, 3]),
                                           orientation=Quat(x=q[0], y=q[1], z=q[2], w=q[3])),
                                 covariance=np.zeros(36)),
                        twist=TwC(twist=Twist(linear=Vec(x=0, y=0, z=0), angular=Vec(x=0, y=0, z=0)),
                                  covariance=np.zeros(36)))
            put(c_odom, t, odom)


def test_rosbag_real_driver_layout(tmp_path):
    from radseg_core.geometry import optical_from_body_pose, scale_intrinsics

    bag = tmp_path / "messy"
    write_messy_bag(bag)
    with pytest.raises(ValueError, match="rgb topic"):
        RosbagDataset(bag)  # two colour cameras: refuses to guess
    ds = RosbagDataset(bag, rgb_topic="/cam/image_color", slop=0.02, pose_is_optical=False)
    assert ds.topics == {"rgb": "/cam/image_color", "depth": "/cam/depth_registered",
                         "camera_info": "/cam/camera_info", "pose": "/odom"}
    assert len(ds) == 4
    f = ds[1]
    np.testing.assert_array_equal(f.rgb, rgb_image(1))  # bgr8 converted to RGB
    np.testing.assert_array_equal(f.depth, depth_image(1))  # 32FC1 metres as is
    np.testing.assert_allclose(f.K, scale_intrinsics(np.asarray(ds._items[1][4][1]), (2 * H, 2 * W), (H, W)))
    np.testing.assert_allclose(f.K, K, atol=1e-9)
    np.testing.assert_allclose(f.T_world_cam, optical_from_body_pose(pose(0.1)), atol=1e-6)
    assert f.stamp == pytest.approx(50.1) and f.frame_id == "cam"
    with pytest.raises(ValueError, match="none of 4 rgb images"):  # depth is 10 ms late
        RosbagDataset(bag, rgb_topic="/cam/image_color", slop=0.005, pose_is_optical=False)
    with pytest.raises(ValueError, match=r"pose is of frame \[base\] but the images are in \[cam\]"):
        RosbagDataset(bag, rgb_topic="/cam/image_color", slop=0.02)  # no TF, no word on what the pose is
    with pytest.raises(ValueError, match="not in bag"):
        RosbagDataset(bag, rgb_topic="/nope")
    with pytest.raises(ValueError, match="has type"):
        RosbagDataset(bag, rgb_topic="/chatter")


# ---------------------------------------------------------------------------------------------- shared


def test_resize_rescales_K_and_keeps_registration(tmp_path):
    write_replica(tmp_path / "r", 2)
    f0 = ReplicaDataset(tmp_path / "r", K=K)[0]
    f = ReplicaDataset(tmp_path / "r", K=K, resize=6)[0]
    assert f.rgb.shape == (6, 8, 3) and f.depth.shape == (6, 8)
    # the pixel centre (u, v) in the half-size image sees the ray of (2u + 0.5, 2v + 0.5) in the original
    u, v = 3, 2
    ray_small = np.linalg.solve(f.K, [u, v, 1.0])
    ray_big = np.linalg.solve(f0.K, [2 * u + 0.5, 2 * v + 0.5, 1.0])
    np.testing.assert_allclose(ray_small, ray_big, atol=1e-12)
    assert resize_frame(f0, None) is f0
    with pytest.raises(ValueError):
        resize_frame(f0, 0)


def test_open_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell"):
        open_dataset(tmp_path / "empty")
    assert detect_kind("sample") == "sample" and detect_kind("synthetic-room") == "synthetic-room"


def test_pose_helper_is_consistent():
    T = pose(0.7)
    q = rotation_to_quaternion(T[:3, :3])
    np.testing.assert_allclose(pose_to_matrix(T[:3, 3], q), T, atol=1e-12)


def test_rosbag_without_pose_topic_says_so(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(tmp_path / "nopose", version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as w:
        w.add_connection("/camera/color/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        w.add_connection("/camera/depth/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        w.add_connection("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        w.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
    with pytest.raises(ValueError, match="no messages on /camera/color/camera_info"):
        RosbagDataset(tmp_path / "nopose")  # /tf present, so the pose source is tf; but nothing recorded

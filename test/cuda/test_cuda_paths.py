"""Every core path on the GPU, checked against the same computation on the CPU (random-tiny weights).

Marked ``cuda``: skipped without CUDA; ``benchmarks/device_suite.sh`` runs them on a lent GPU, and its
CPU dry run (``--device cpu --quick``, in CI) runs them on the CPU so they keep working.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cuda_scenes import room_frame

from radseg_core.encoder import build_encoder, scga, scra_weights
from radseg_core.encoder.sam_refine import RefineConfig, SamRefiner
from radseg_core.map_io import load_map, save_map
from radseg_core.pipeline import MapperConfig, SemanticMapper
from radseg_core.voxel_map import VoxelMap

pytestmark = pytest.mark.cuda
CLASSES = ["wall", "floor", "ceiling", "door"]


def _encoder(device, **kw):
    return build_encoder("random-tiny", device=str(device), **({"crop": 336, "stride": 224} | kw))


@pytest.fixture(scope="module")
def encoders(device):
    """(device, cpu) encoders: default windows, and small ones for mapping tests (one object on the CPU)."""
    out = {}
    for name, kw in (("default", {}), ("small", {"crop": 64, "stride": 48})):
        gpu = _encoder(device, **kw)
        out[name] = (gpu, gpu if device.type == "cpu" else _encoder("cpu", **kw))
    return out


def test_encoder_windows_scra_scga_match_the_cpu(device, encoders):
    """640x480, the default windows (6 of 336 px, one forward), SCRA and SCGA on the device."""
    gpu, cpu = encoders["default"]
    img = torch.from_numpy(room_frame(0).rgb).permute(2, 0, 1).contiguous()
    feats = gpu.encode_features(img.to(device))
    assert feats.device.type == device.type and gpu.grid(480, 640).num == 6
    torch.testing.assert_close(feats.cpu(), cpu.encode_features(img), atol=1e-3, rtol=1e-3)  # kernels differ
    res = gpu.predict(img.to(device), CLASSES)
    ref = cpu.predict(img, CLASSES)
    assert res.labels.device.type == device.type
    assert (res.labels.cpu() == ref.labels).float().mean() > 0.999


def test_scra_and_scga_kernels_match_the_cpu(device):
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 4, 300, 16, generator=gen)
    torch.testing.assert_close(scra_weights(tokens.to(device), 10.0).cpu(), scra_weights(tokens, 10.0),
                               atol=1e-5, rtol=1e-4)
    fmap = torch.randn(1, 32, 30, 40, generator=gen)
    small_blocks = 1200 * 100  # 100 query rows per block: many blocks over 1200 tokens
    torch.testing.assert_close(scga(fmap.to(device), 10.0, small_blocks).cpu(), scga(fmap, 10.0),
                               atol=1e-5, rtol=1e-4)


class _BoxDecoder:
    """Stand-in SAM decoder on any device: mask = the prompt box, fixed IoU (as in test_encoder_sam_refine)."""

    mask_threshold = 0.0

    def embed(self, feats):
        return feats

    def decode(self, embedding, points, point_labels, boxes, mask_input):
        n = boxes.shape[0]
        yy = torch.arange(256, device=boxes.device).view(1, 256, 1) * 4.0
        xx = torch.arange(256, device=boxes.device).view(1, 1, 256) * 4.0
        x0, y0, x1, y1 = (boxes[:, i].view(n, 1, 1) for i in range(4))
        inside = (xx >= x0 - 4) & (xx <= x1 + 4) & (yy >= y0 - 4) & (yy <= y1 + 4)
        low = torch.where(inside, 20.0, -20.0)[:, None]
        return low, torch.full((n, 1), 0.95, device=boxes.device)


def test_sam_refinement_on_the_device(device):
    """RADSeg+: SAM adaptor on the whole image, region prompts and mask merging, on the device."""
    cfg = RefineConfig(minimal_area=4, coarse_thresh=0.0)
    gpu = _encoder(device, crop=64, stride=32, sam_refine=True, sam_refiner=SamRefiner(_BoxDecoder(), cfg))
    cpu = _encoder("cpu", crop=64, stride=32, sam_refine=True, sam_refiner=SamRefiner(_BoxDecoder(), cfg))
    img = room_frame(1, h=96, w=128).rgb
    res, ref = gpu.predict(img, CLASSES), cpu.predict(img, CLASSES)
    assert res.refined and res.labels.device.type == device.type
    assert (res.labels.cpu() == ref.labels).float().mean() > 0.99


def test_sam_refinement_with_segment_anythings_modules(device):
    """SAM's own neck, prompt encoder and mask decoder (random weights) behind RADIO's SAM adaptor."""
    sa = pytest.importorskip("segment_anything")
    from radseg_core.encoder.sam_refine import SegmentAnythingDecoder

    torch.manual_seed(0)
    sam = torch.nn.Module()
    sam.image_encoder = torch.nn.Module()
    sam.image_encoder.neck = torch.nn.Sequential(  # ImageEncoderViT's neck, from the tiny SAM adaptor's 64-d
        torch.nn.Conv2d(64, 256, 1, bias=False), sa.modeling.common.LayerNorm2d(256),
        torch.nn.Conv2d(256, 256, 3, padding=1, bias=False), sa.modeling.common.LayerNorm2d(256))
    sam.prompt_encoder = sa.modeling.PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                                   input_image_size=(1024, 1024), mask_in_chans=16)
    sam.mask_decoder = sa.modeling.MaskDecoder(
        num_multimask_outputs=3, transformer_dim=256,
        transformer=sa.modeling.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=512, num_heads=8))
    decoder = SegmentAnythingDecoder(sam).to(device).eval()
    refiner = SamRefiner(decoder, RefineConfig(minimal_area=4, coarse_thresh=0.0, iou_thresh=-1.0))
    enc = _encoder(device, crop=64, stride=32, sam_refine=True, sam_refiner=refiner)
    res = enc.predict(room_frame(2, h=64, w=64).rgb, CLASSES[:2])
    assert res.refined and res.labels.shape == (64, 64) and res.labels.device.type == device.type


def _feed(vmap: VoxelMap, frames, dim: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for f in frames:
        vmap.integrate_frame(f, torch.randn(dim, 30, 40, generator=gen).to(vmap.device), max_depth=10.0)


def _same_map(a: VoxelMap, b: VoxelMap) -> None:
    ka, kb = a.keys().cpu(), b.keys().cpu()
    assert len(a) == len(b) and torch.equal(ka.sort().values, kb.sort().values)
    oa, ob = ka.argsort(), kb.argsort()
    assert torch.equal(a.hits().cpu()[oa], b.hits().cpu()[ob])
    torch.testing.assert_close(a.values().cpu()[oa].float(), b.values().cpu()[ob].float(), atol=2e-3, rtol=2e-3)


def _old_wall(vmap: VoxelMap) -> int:
    c = vmap.centers().cpu()
    return int(((c[:, 0] > 5.9) & (c[:, 0] < 6.1) & (c[:, 1].abs() < 1.8) & (c[:, 2] > 0.2) & (c[:, 2] < 2.8)).sum())


def test_integration_and_free_space_clearing_match_the_cpu(device):
    """Frames into a 64-d fp16 map; then the far wall moves back: clearing removes the wall it saw."""
    devices = [device] if device.type == "cpu" else [device, torch.device("cpu")]  # CPU dry run: once
    maps = {d: VoxelMap(voxel_size=0.05, dim=64, device=d, free_space_decay=0.5) for d in devices}
    for m in maps.values():
        _feed(m, [room_frame(i, h=240, w=320) for i in range(2)], 64)
    wall = _old_wall(maps[devices[-1]])
    for m in maps.values():
        _feed(m, [room_frame(i, h=240, w=320, far_wall=9.0) for i in range(2, 5)], 64, seed=1)
    _same_map(maps[device], maps[devices[-1]])
    assert wall > 1000 and _old_wall(maps[devices[-1]]) < 0.5 * wall  # seen through: hits halved, emptied
    assert maps[device].values().device.type == device.type


def _mapper(encoder, **kw) -> SemanticMapper:
    cfg = MapperConfig(model="random-tiny", device=str(encoder.device), classes=CLASSES, max_depth=8.0, **kw)
    return SemanticMapper(cfg, encoder=encoder)


@pytest.mark.parametrize("cache_aligned", [False, True])
def test_queries_with_and_without_the_aligned_cache(encoders, cache_aligned):
    enc_gpu, enc_cpu = encoders["small"]
    gpu, cpu = _mapper(enc_gpu, cache_aligned=cache_aligned), _mapper(enc_cpu)
    for i in range(2):
        frame = room_frame(i, h=120, w=160)
        gpu.process(frame)
        cpu.process(frame)
    a, b = gpu.query(["door", "floor"], top_k=3), cpu.query(["door", "floor"], top_k=3)
    order_a, order_b = np.lexsort(a.positions.T), np.lexsort(b.positions.T)
    np.testing.assert_allclose(a.positions[order_a], b.positions[order_b], atol=1e-6)
    # the cache holds fp16 unit vectors; softmax(100 cos) scales their rounding by 100
    np.testing.assert_allclose(a.scores[:, order_a], b.scores[:, order_b], atol=0.02 if cache_aligned else 1e-3)
    assert np.mean(gpu.cloud()["label"][order_a] == cpu.cloud()["label"][order_b]) > 0.98


def test_save_and_load_a_device_map(device, encoders, tmp_path):
    m = _mapper(encoders["small"][0])
    m.process(room_frame(0, h=240, w=320))
    path = tmp_path / "gpu.rsmap"
    assert m.save(path) == len(m)
    back = load_map(path, device=device)
    assert back.values().device.type == device.type
    _same_map(back, m.map)
    fresh = _mapper(encoders["small"][0])
    assert fresh.load(path) == len(m) and fresh.map.values().device.type == device.type
    save_map(back, tmp_path / "again.rsmap")
    _same_map(load_map(tmp_path / "again.rsmap"), m.map)


# --------------------------------------------------------------------------- host <-> device traffic
def _memcpy_bytes(prof, folder: Path) -> dict[str, int]:
    """Bytes copied host->device and device->host in a profile (CUDA memcpy activity records)."""
    trace = folder / "trace.json"
    prof.export_chrome_trace(str(trace))
    totals = {"HtoD": 0, "DtoH": 0, "HtoD_count": 0, "DtoH_count": 0}
    for ev in json.loads(trace.read_text()).get("traceEvents", []):
        if ev.get("cat") != "gpu_memcpy":
            continue
        for kind in ("HtoD", "DtoH"):
            if kind in ev.get("name", ""):
                totals[kind] += int(ev.get("args", {}).get("bytes", 0))
                totals[f"{kind}_count"] += 1
    return totals


def test_no_bulk_copies_between_host_and_device_per_frame(device, encoders, tmp_path):
    """A frame's encoder and map update on the GPU move only the frame itself across the bus.

    Allowed: the image up (the encoder's input, and again for the voxel colours), the depth up (float32),
    and scalars down (sizes of data-dependent results: new voxels, points in range): at most 64 KiB.
    Features, probabilities and map rows never cross. Syncs are counted (torch.cuda sync debug mode)
    and reported, not limited: a hashed map's sizes are data-dependent.
    """
    if device.type != "cuda":
        pytest.skip("host<->device copies exist only on a GPU")
    from torch.profiler import ProfilerActivity, profile

    m = _mapper(encoders["default"][0])  # 640x480 in the default windows
    frames = [room_frame(i) for i in range(4)]
    for f in frames[:2]:  # warm-up: allocator, text cache, kernels
        m.process(f)
    torch.cuda.synchronize()
    report = {}
    for name, f in (("frame_2", frames[2]), ("frame_3", frames[3])):
        with warnings.catch_warnings(record=True) as syncs:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    enc = m.encode(f)
                    m.map.integrate_frame(f, enc.values, min_depth=m.config.min_depth,
                                          max_depth=m.config.max_depth)
                    torch.cuda.synchronize()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        copies = _memcpy_bytes(prof, tmp_path)
        report[name] = copies | {"syncs": sum("synchroniz" in str(w.message) for w in syncs)}
    out = os.environ.get("RADSEG_SUITE_REPORT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "per_frame_copies.json").write_text(json.dumps(report, indent=2))
    frame = frames[3]
    inputs = 2 * frame.rgb.nbytes + frame.depth.astype(np.float32).nbytes
    for name, r in report.items():
        assert r["HtoD_count"] + r["DtoH_count"] > 0, "the profiler recorded no memcpy at all: cannot judge"
        assert r["HtoD"] <= inputs + 64 * 1024, (name, r)
        assert r["DtoH"] <= 64 * 1024, (name, r)

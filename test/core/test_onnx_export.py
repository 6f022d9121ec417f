"""ONNX export of the per-window backbone and the onnxruntime encoder backend (CPU execution provider).

Fidelity is checked on the same windows against torch in float32 (<= 1e-4 abs): random-tiny here, a
C-RADIOv3-B-shaped checkpoint built through RADIO's own code below (window 224 to keep CI short; the
336-window B and L checks are in benchmarks/onnx_export.py, too slow for CI). Random weights: never semantic.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from radseg_core.encoder import build_encoder  # noqa: E402
from radseg_core.encoder.backends import BackendError, OnnxRuntimeWindows, WindowBackbone  # noqa: E402
from radseg_core.export import ONNX_OPSET, export_onnx  # noqa: E402

TOL = 1e-4


def _windows(n: int, side: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    return build_encoder("random-tiny", crop=64, stride=48)


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    return export_onnx(tiny, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_export_writes_graph_and_external_weights(tiny, tiny_onnx):
    import onnx

    assert tiny_onnx.path.is_file() and tiny_onnx.data_path.name == "tiny.onnx.data"
    graph = onnx.load(str(tiny_onnx.path), load_external_data=False)
    external = [t for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(dict((e.key, e.value) for e in t.external_data)["location"] == "tiny.onnx.data"
                            for t in external)
    stored = sum(int(dict((e.key, e.value) for e in t.external_data)["length"]) for t in external)
    assert tiny_onnx.data_path.stat().st_size >= stored > 100_000  # the weights are in the data file
    assert tiny_onnx.path.stat().st_size < 50_000  # the graph file holds the graph (no stack traces)
    assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    (inp,), (out,) = graph.graph.input, graph.graph.output
    assert inp.name == "images" and out.name == "features"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["windows", 3, 64, 64]  # dynamic number of windows, fixed window
    assert "Resize" not in {n.op_type for n in graph.graph.node}  # position table folded for the window
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["radseg.window"] == "64x64" and meta["radseg.feature_dim"] == str(tiny.feature_dim)
    assert meta["radseg.scra"] == "10" and len(meta["radseg.weights_sha256"]) == 64


@pytest.mark.parametrize("n", [1, 2, 5])
def test_onnxruntime_matches_torch_on_the_same_windows(tiny, tiny_onnx, n):
    unit = WindowBackbone(tiny.model, tiny.patch)
    ort = OnnxRuntimeWindows(tiny_onnx.path, torch.device("cpu"), fallback=unit)
    x = _windows(n, 64, seed=n)
    with torch.no_grad():
        ref = unit(x)
    got = ort(x)
    assert got.shape == ref.shape == (n, tiny.feature_dim, 4, 4)
    assert float((got - ref).abs().max()) <= TOL and ort.fallback_calls == 0


def test_the_graph_holds_scra(tiny_onnx):
    """The exported last block is SCRA: on top of SCRA's output, well away from the plain block's.

    (On random weights SCRA moves the output by only ~1e-4, so the margin is relative.)"""
    plain = build_encoder("random-tiny", crop=64, stride=48, scra=False)
    scra = build_encoder("random-tiny", crop=64, stride=48)
    x = _windows(2, 64)
    got = OnnxRuntimeWindows(tiny_onnx.path, torch.device("cpu"), fallback=None)(x)
    with torch.no_grad():
        to_scra = float((got - scra.backbone(x)).abs().max())
        to_plain = float((got - plain.backbone(x)).abs().max())
    assert to_scra <= TOL and 20 * to_scra < to_plain


def test_encoder_backend_onnxruntime_gives_the_torch_features(tiny, tiny_onnx):
    enc = build_encoder("random-tiny", crop=64, stride=48, backend="onnxruntime", onnx_model=str(tiny_onnx.path))
    assert enc.backend_name == "onnxruntime" and enc.window_backend.providers == ["CPUExecutionProvider"]
    img = torch.randint(0, 256, (3, 96, 160), dtype=torch.uint8)
    assert float((enc.encode_features(img) - tiny.encode_features(img)).abs().max()) <= TOL
    assert enc.window_backend.fallback_calls == 0
    # windows of another size (an image smaller than the crop, RADIO-SAM's whole-image pass) use torch
    small = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8)
    assert float((enc.encode_features(small) - tiny.encode_features(small)).abs().max()) <= TOL
    emb, _ = enc.sam_embedding(small.float() / 255, long_side=128)
    assert emb.shape[1] == 64 and enc.window_backend.fallback_calls == 2


def test_without_a_file_the_loaded_model_is_exported_at_start(tiny):
    enc = build_encoder("random-tiny", crop=64, stride=48, backend="onnxruntime")
    folder = enc.window_backend.path.parent
    assert folder.is_dir() and enc.window_backend.metadata["window"] == (64, 64)
    img = torch.randint(0, 256, (3, 64, 112), dtype=torch.uint8)
    assert float((enc.encode_features(img) - tiny.encode_features(img)).abs().max()) <= TOL
    enc.window_backend = None  # the temporary export goes with its backend
    import gc

    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize("kw, match", [
    ({"seed": 1}, "other weights"),
    ({"crop": 96, "stride": 48}, "64x64 windows, the encoder's crop is 96"),
    ({"scra": False}, "SCRA 10, the encoder runs SCRA off"),
])
def test_a_file_from_other_weights_or_settings_is_refused(tiny_onnx, kw, match):
    from radseg_core.model import RadioSpec

    model = RadioSpec("random-tiny", seed=kw.pop("seed", 0))
    opts = {"crop": 64, "stride": 48} | kw
    with pytest.raises(BackendError, match=match):
        build_encoder(model, backend="onnxruntime", onnx_model=str(tiny_onnx.path), **opts)


def test_missing_onnxruntime_is_one_clear_line_before_loading(monkeypatch):
    import radseg_core.encoder.radseg as radseg

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.setattr(radseg, "load_radio", lambda *a, **k: pytest.fail("model loaded before the check"))
    with pytest.raises(BackendError) as err:
        build_encoder("random-tiny", backend="onnxruntime")
    msg = str(err.value)
    assert "\n" not in msg and "pip install onnxruntime" in msg and "encoder_backend 'torch'" in msg
    with pytest.raises(BackendError, match="one of torch, onnxruntime"):
        build_encoder("random-tiny", backend="tensorrt")


def test_export_without_onnx_packages_says_what_to_install(tiny, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a))
    with pytest.raises(BackendError, match=r"\['onnxscript'\].*radseg-core\[export\]"):
        export_onnx(tiny, tmp_path / "x.onnx")


def test_cuda_device_needs_the_cuda_execution_provider():
    from radseg_core.encoder.backends import providers_for

    assert providers_for(torch.device("cpu"), ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        providers_for(torch.device("cuda"), ["CPUExecutionProvider"])


# ------------------------------------------------------------------ pipeline and command-line tools
def _top2_gap(mapper, frame) -> torch.Tensor:
    """Best minus second-best class probability per pixel (the torch mapper's own numbers)."""
    enc = mapper.encoder
    feats = enc.encode_features(frame.rgb)
    probs = enc.class_probs(enc.align_map(feats[None]), enc.encode_text(mapper.config.classes))
    probs = enc.postprocess(probs, frame.rgb.shape[:2])[0][0]
    top2 = probs.topk(2, dim=0).values
    return top2[0] - top2[1]


def test_pipeline_with_onnxruntime_maps_the_sample_scene_with_the_same_labels(tiny):
    """The default layout (crop 336, stride 224) at 640 px: torch and onnxruntime mappers agree.

    Features differ by ~1e-6 (float32 reassociation), so a label can differ only where two classes tie to
    that precision; random-tiny's flat probabilities make such ties occur (a few pixels per million).
    """
    from radseg_core.datasets.sample import MotorcycleSample
    from radseg_core.pipeline import MapperConfig, SemanticMapper

    frames = [MotorcycleSample(n_frames=2)[i] for i in range(2)]
    cfg = dict(model="random-tiny", device="cpu", classes=["motorcycle", "wall", "floor", "box"])
    mappers = {b: SemanticMapper(MapperConfig(encoder_backend=b, **cfg)) for b in ("torch", "onnxruntime")}
    assert mappers["onnxruntime"].encoder.window_backend.window == (336, 336)
    differ = 0
    for frame in frames:
        outs = {b: m.process(frame) for b, m in mappers.items()}
        a, b = outs["onnxruntime"].labels, outs["torch"].labels
        assert a.shape == b.shape == frame.rgb.shape[:2]
        diff = torch.from_numpy(a != b)
        differ += int(diff.sum())
        assert bool((_top2_gap(mappers["torch"], frame)[diff] < 1e-4).all())  # only exact ties flip
    assert differ <= 1e-5 * len(frames) * frames[0].rgb.shape[0] * frames[0].rgb.shape[1]
    assert mappers["onnxruntime"].encoder.window_backend.fallback_calls == 0
    a, b = (m.cloud() for m in mappers.values())
    np.testing.assert_array_equal(a["xyz"], b["xyz"])
    assert np.mean(a["label"] == b["label"]) > 0.999


def test_radseg_export_cli_writes_a_checked_file(tmp_path, capsys):
    from radseg_core.cli import export as export_cli

    out = tmp_path / "m" / "tiny.onnx"
    assert export_cli.main(["--model", "random-tiny", "--crop", "64", "--stride", "48", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert out.is_file() and (tmp_path / "m" / "tiny.onnx.data").is_file()
    assert report["window"] == [64, 64] and report["max_abs_diff_vs_torch"] <= TOL
    assert report["windows_per_frame"] == 130  # 640x480 in 64-px windows every 48 px: 10 x 13
    assert "trtexec --onnx=tiny.onnx --fp16 --minShapes=images:1x3x64x64" in captured.err
    assert export_cli.main(["--model", "random-tiny", "--crop", "60", "-o", str(out)]) == 2
    assert "multiple of 16" in capsys.readouterr().err


def test_radseg_map_with_onnxruntime_and_without_it(tmp_path, capsys, monkeypatch):
    from radseg_core.cli import map as map_cli

    argv = ["sample", "-o", str(tmp_path), "--model", "random-tiny", "--device", "cpu", "--max-frames", "1",
            "--resize", "96", "--no-progress", "--no-segmentation", "--encoder-backend", "onnxruntime"]
    assert map_cli.main(argv) == 0
    assert (tmp_path / "map.rsmap").is_file()
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert map_cli.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("radseg-map")]
    assert len(err) == 1 and "needs the onnxruntime package" in err[0]
    assert map_cli.main([*argv[:-2], "--onnx-model", "x.onnx"]) == 2
    assert "--onnx-model needs --encoder-backend onnxruntime" in capsys.readouterr().err


# ------------------------------------------------------------------ a released shape, through RADIO's code
@pytest.fixture(scope="module")
def radio_b(tmp_path_factory):
    from radio_fixtures import radio_checkout, write_text_model

    from radseg_core.model.replica_checkpoint import write_radio_checkpoint

    root = tmp_path_factory.mktemp("radio_b")
    repo = radio_checkout(root)
    if repo is None:
        pytest.skip("no NVlabs/RADIO checkout (set RADSEG_RADIO_REPO or pre-fill the torch hub cache)")
    text = root / "text"
    write_text_model(text / "google/siglip2-so400m-patch16-naflex", 1152)
    ckpt = write_radio_checkpoint(root / "c-radio_v3-b.pth.tar", repo, vit="vit_base_patch16_224",
                                  vit_kwargs=dict(embed_dim=768, depth=12, num_heads=12))
    return repo, ckpt, text


def test_c_radio_v3_b_shape_round_trips(radio_b, tmp_path):
    """768-d, 12 blocks, CPE and registers as released, built by RADIO's hubconf (random weights)."""
    from radseg_core.model import RadioSpec

    repo, ckpt, text = radio_b
    spec = RadioSpec("c-radio_v3-b", repo_dir=str(repo), checkpoint=str(ckpt), text_model_dir=str(text))
    enc = build_encoder(spec, crop=224, stride=224)
    assert type(enc.model).__module__ == "radio.radio_model" and enc.feature_dim == 768
    info = export_onnx(enc, tmp_path / "b.onnx")
    unit = WindowBackbone(enc.model, enc.patch)
    x = _windows(3, 224)  # exported with 2 windows, run with 3
    with torch.no_grad():
        ref = unit(x)
    got = OnnxRuntimeWindows(info.path, torch.device("cpu"), fallback=None)(x)
    assert got.shape == (3, 768, 14, 14)
    assert float((got - ref).abs().max()) <= TOL

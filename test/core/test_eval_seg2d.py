"""2D benchmark readers on tiny folders in each MMSegmentation layout, the score upsampling, and one
end-to-end ``radseg-eval 2d`` run (random-tiny: a pipeline check, labelled as such)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from radseg_core.cli import eval as eval_cli
from radseg_core.datasets.seg2d import ADE150, CITYSCAPES19, COCOSTUFF171, CONTEXT59, VOC20, open_seg2d
from radseg_core.eval_bench import scores_to_labels

H, W = 20, 30
RAW = np.zeros((H, W), np.uint8)
RAW[:, 10:20] = 1
RAW[:, 20:] = 255
RAW[0, 0] = 7


def _img(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((H, W, 3), 128, np.uint8))


def _lab(path: Path, raw=RAW, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(raw)
    if palette:  # VOC stores indices in a palette PNG; the colours must not be read as labels
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in (i, 255 - i, (3 * i) % 256)])
    im.save(path)


def make_layout(name: str, root: Path) -> Path:
    if name in ("voc", "context"):
        year, lab_dir, split = (("2012", "SegmentationClass", "Segmentation") if name == "voc"
                                else ("2010", "SegmentationClassContext", "SegmentationContext"))
        r = root / "VOCdevkit" / f"VOC{year}"
        for i in ("a", "b"):
            _img(r / "JPEGImages" / f"{i}.jpg")
            _lab(r / lab_dir / f"{i}.png", palette=name == "voc")
        (r / "ImageSets" / split).mkdir(parents=True)
        (r / "ImageSets" / split / "val.txt").write_text("b\n")  # the split picks b only
        return root / "VOCdevkit"
    if name == "ade20k":
        r = root / "ADEChallengeData2016"
        _img(r / "images" / "validation" / "ADE_val_1.jpg")
        _lab(r / "annotations" / "validation" / "ADE_val_1.png")
        return root
    if name == "cityscapes":
        _img(root / "leftImg8bit" / "val" / "lindau" / "lindau_000000_000019_leftImg8bit.png")
        _lab(root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelTrainIds.png")
        return root
    _img(root / "images" / "val2017" / "000000000139.jpg")
    _lab(root / "annotations" / "val2017" / "000000000139_labelTrainIds.png")
    return root


# stored value -> our label, per dataset: background / ignore conventions of each benchmark
EXPECTED = {  # (value 0, value 1, value 7, value 255)
    "voc": (0, 1, 7, 0),  # 0 background ignored (§4.1), 255 boundary ignored
    "context": (0, 1, 7, 0),  # Context59: 0 background ignored
    "ade20k": (0, 1, 7, 0),  # 0 "other" ignored
    "cityscapes": (1, 2, 8, 0),  # train ids 0..18 -> 1..19, 255 ignored
    "cocostuff": (1, 2, 8, 0),  # train ids 0..170 -> 1..171, 255 ignored
}
CLASSES = {"voc": VOC20, "context": CONTEXT59, "ade20k": ADE150, "cityscapes": CITYSCAPES19,
           "cocostuff": COCOSTUFF171}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_layout_reader_maps_labels(name, tmp_path):
    ds = open_seg2d(name, make_layout(name, tmp_path))
    assert ds.classes == CLASSES[name]
    assert len(ds) == 1
    if name in ("voc", "context"):
        assert ds.pairs[0][0].stem == "b"  # val.txt decides
    assert ds.image(0).shape == (H, W, 3)
    lab = ds.labels(0)
    v0, v1, v7, v255 = EXPECTED[name]
    assert lab.shape == (H, W) and lab.dtype == np.int32
    assert lab[5, 5] == v0 and lab[5, 15] == v1 and lab[0, 0] == v7 and lab[5, 25] == v255


def test_voc_palette_png_gives_indices_not_colours(tmp_path):
    ds = open_seg2d("voc", make_layout("voc", tmp_path))
    assert set(np.unique(ds.labels(0))) == {0, 1, 7}


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_seg2d("voc", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        open_seg2d("voc", tmp_path)
    with pytest.raises(FileNotFoundError, match="no image / label pairs"):
        open_seg2d("ade20k", tmp_path)
    with pytest.raises(ValueError, match="unknown 2D dataset"):
        open_seg2d("kitti", tmp_path)


def test_scores_upsampled_before_argmax():
    # 2 classes on a 1x2 grid -> 1x4 output. Bilinear (align_corners=False) of [0.2, 0.8] gives
    # [0.2, 0.35, 0.65, 0.8] for class 1, the mirror for class 2: labels [2, 2, 1, 1].
    probs = np.array([[[0.2, 0.8]], [[0.8, 0.2]]], np.float32)
    np.testing.assert_array_equal(scores_to_labels(probs, (1, 4)), [[2, 2, 1, 1]])
    # a threshold above 0.65 leaves only the outer pixels labelled
    np.testing.assert_array_equal(scores_to_labels(probs, (1, 4), threshold=0.7), [[2, 0, 0, 1]])


def test_2d_command_end_to_end(tmp_path, capsys, monkeypatch):
    from radseg_core.cli import common

    configs = []
    real = common.build_mapper
    monkeypatch.setattr(common, "build_mapper", lambda cfg: configs.append(cfg) or real(cfg))
    root = make_layout("cityscapes", tmp_path / "city")
    out = tmp_path / "out"
    rc = eval_cli.main(["2d", "cityscapes", str(root), "--preset", "low", "-o", str(out), "--model",
                        "random-tiny", "--device", "cpu", "--no-progress"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in stdout and "paper" not in stdout
    rep = json.loads((out / "eval.json").read_text())
    assert rep["settings"] == {"short_side": 560, "crop": 224, "stride": 112}  # Tab. A.1 City low
    assert rep["random_weights"] is True and rep["images"] == 1
    assert 0.0 <= rep["miou_2d"]["miou"] <= 1.0
    assert (configs[0].crop, configs[0].stride, configs[0].classes) == (224, 112, CITYSCAPES19)
    names = tmp_path / "names.txt"
    names.write_text("road\nsidewalk\n")
    assert eval_cli.main(["2d", "cityscapes", str(root), "--class-names", str(names), "-o", str(out),
                          "--model", "random-tiny", "--device", "cpu", "--no-progress"]) == 2
    assert "19" in capsys.readouterr().err

"""Readers for the 2D semantic segmentation benchmarks of RADSeg §4.1, in MMSegmentation's folder layouts
(RADSeg's 2D evaluation is built on MMSegmentation; see its ``docs/en/user_guides/2_dataset_prepare.md``).

Every reader returns ``image(i)`` (H, W, 3) uint8 RGB and ``labels(i)`` (H, W) int32 in this package's
convention: ``k`` = ``classes[k-1]``, 0 = ignore. The background class is ignored, as in RADSeg §4.1
("We ignore the ambiguous 'background' label"): VOC and Context are evaluated on their 20 / 59 object
classes (VOC20, Context59), ADE20K's 0 ("other") and the 255 pixels of every set are ignored.

========== ====================================================== =========================================
dataset    layout under ROOT (validation split)                   stored value -> our label
========== ====================================================== =========================================
voc        VOC2012/JPEGImages, VOC2012/SegmentationClass,          0 background, 255 -> 0; v -> v
           VOC2012/ImageSets/Segmentation/val.txt
context    VOC2010/JPEGImages, VOC2010/SegmentationClassContext,   0 background -> 0; v -> v (59 classes)
           VOC2010/ImageSets/SegmentationContext/val.txt
ade20k     images/validation/*.jpg, annotations/validation/*.png   0 other -> 0; v -> v (150 classes)
cityscapes leftImg8bit/val/<city>/*_leftImg8bit.png,               train id t -> t + 1; 255 -> 0
           gtFine/val/<city>/*_gtFine_labelTrainIds.png
cocostuff  images/val2017/*.jpg, annotations/val2017/              t -> t + 1 (171 classes); 255 -> 0
           *_labelTrainIds.png (mmseg's converted 164k set)
========== ====================================================== =========================================

ROOT may also be the VOCdevkit folder (voc, context).

The names above are the datasets' own (mmseg's). RADSeg prompts with other names for some classes (VOC
``ship`` and ``table``; ADE, COCO-Stuff and Cityscapes join two-word names: ``trafficlight``): those are
listed, one per line in label order, in ``class_names/<dataset>.txt`` with their source, and
:func:`official_class_names` reads them (the 2D presets prompt with them).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

VOC20 = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
         "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
CONTEXT59 = [
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building",
    "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog",
    "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall",
    "water", "window", "wood"]
ADE150 = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag"]
CITYSCAPES19 = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                "bicycle"]
COCOSTUFF171 = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush", "banner", "blanket", "branch", "bridge", "building-other",
    "bush", "cabinet", "cage", "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes",
    "clouds", "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
    "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal",
    "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other",
    "plastic", "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug",
    "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone",
    "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood"]

DATASETS_2D = ("voc", "context", "ade20k", "cityscapes", "cocostuff")
CLASS_NAMES_DIR = Path(__file__).parent / "class_names"


def read_class_names(path: str | Path) -> list[str]:
    """Prompt names, one per line in label order; blank lines and ``#`` comment lines are skipped."""
    lines = (s.strip() for s in Path(path).read_text(encoding="utf-8").splitlines())
    return [s for s in lines if s and not s.startswith("#")]


def official_class_names(name: str) -> list[str]:
    """The names RADSeg's 2D evaluation prompts with for benchmark ``name`` (its ``configs/cls_*.txt``)."""
    if name not in DATASETS_2D:
        raise ValueError(f"unknown 2D dataset {name!r}; choose from {', '.join(DATASETS_2D)}")
    return read_class_names(CLASS_NAMES_DIR / f"{name}.txt")


class Seg2DDataset:
    """Image / label pairs of one benchmark split; ``classes``, ``image(i)``, ``labels(i)``, ``len()``."""

    def __init__(self, name: str, pairs: list[tuple[Path, Path]], classes: list[str], offset: int,
                 max_images: int | None = None):
        if not pairs:
            raise FileNotFoundError(f"{name}: no image / label pairs found")
        self.name, self.classes, self.offset = name, list(classes), offset
        self.pairs = pairs[:max_images] if max_images else pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def image(self, i: int) -> np.ndarray:
        bgr = cv2.imread(str(self.pairs[i][0]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {self.pairs[i][0]}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def labels(self, i: int) -> np.ndarray:
        """Stored value v -> v + offset; 255 and values outside the class range -> 0 (ignore)."""
        raw = read_label_png(self.pairs[i][1]).astype(np.int64)
        lab = raw + self.offset
        ok = (raw != 255) & (lab >= 1) & (lab <= len(self.classes))
        return np.where(ok, lab, 0).astype(np.int32)


def read_label_png(path: Path) -> np.ndarray:
    """Label ids of a PNG; palette PNGs (VOC's SegmentationClass) give their palette indices, not colours."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{path}: label PNG must be single-channel or palette, got mode {im.mode}")
        return np.array(im)


def _split_pairs(root: Path, img_dir: str, lab_dir: str, split_file: str) -> list[tuple[Path, Path]]:
    split = root / split_file
    if split.is_file():
        ids = [s.strip() for s in split.read_text().splitlines() if s.strip()]
    else:
        ids = sorted(p.stem for p in (root / lab_dir).glob("*.png"))
    return [(root / img_dir / f"{i}.jpg", root / lab_dir / f"{i}.png") for i in ids
            if (root / lab_dir / f"{i}.png").is_file()]


def _voc_root(root: Path, year: str) -> Path:
    for cand in (root / f"VOC{year}", root / "VOCdevkit" / f"VOC{year}", root):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise FileNotFoundError(f"{root}: no VOC{year}/JPEGImages (expected VOCdevkit/VOC{year} layout)")


def open_seg2d(name: str, root: str | Path, *, max_images: int | None = None) -> Seg2DDataset:
    """The validation split of benchmark ``name`` (one of ``DATASETS_2D``) under ``root``."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if name == "voc":
        r = _voc_root(root, "2012")
        pairs = _split_pairs(r, "JPEGImages", "SegmentationClass", "ImageSets/Segmentation/val.txt")
        return Seg2DDataset(name, pairs, VOC20, 0, max_images)
    if name == "context":
        r = _voc_root(root, "2010")
        pairs = _split_pairs(r, "JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext/val.txt")
        return Seg2DDataset(name, pairs, CONTEXT59, 0, max_images)
    if name == "ade20k":
        r = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
        labs = sorted((r / "annotations" / "validation").glob("*.png"))
        pairs = [(r / "images" / "validation" / f"{p.stem}.jpg", p) for p in labs]
        return Seg2DDataset(name, pairs, ADE150, 0, max_images)
    if name == "cityscapes":
        labs = sorted((root / "gtFine" / "val").glob("*/*_gtFine_labelTrainIds.png"))
        pairs = [(root / "leftImg8bit" / "val" / p.parent.name
                  / p.name.replace("_gtFine_labelTrainIds.png", "_leftImg8bit.png"), p) for p in labs]
        return Seg2DDataset(name, pairs, CITYSCAPES19, 1, max_images)
    if name == "cocostuff":
        labs = sorted((root / "annotations" / "val2017").glob("*_labelTrainIds.png"))
        pairs = [(root / "images" / "val2017" / p.name.replace("_labelTrainIds.png", ".jpg"), p) for p in labs]
        return Seg2DDataset(name, pairs, COCOSTUFF171, 1, max_images)
    raise ValueError(f"unknown 2D dataset {name!r}; choose from {', '.join(DATASETS_2D)}")

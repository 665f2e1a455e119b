from pathlib import Path

import numpy as np
from PIL import Image

from artdet.data.demo import CLASSES, generate, render_scene
from artdet.data.voc import read_voc


def test_same_seed_gives_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "demo", tmp_path / "b" / "demo"
    generate(a, count=6, seed=7)
    generate(b, count=6, seed=7)
    for path in sorted(a.glob("*.jpg")):
        assert path.read_bytes() == (b / path.name).read_bytes()
    other, _ = render_scene(8, 0)
    assert other != (a / "gallery_00000.jpg").read_bytes()


def test_more_images_keep_the_first_ones(tmp_path: Path) -> None:
    generate(tmp_path / "few", count=3, seed=1)
    generate(tmp_path / "many", count=8, seed=1)
    for path in (tmp_path / "few").glob("*.jpg"):
        assert path.read_bytes() == (tmp_path / "many" / path.name).read_bytes()


def test_dataset_has_all_classes_negatives_and_valid_boxes(demo_dir: Path) -> None:
    names, per_image = [], []
    for xml in sorted(demo_dir.glob("*.xml")):
        ann = read_voc(xml)
        image = Image.open(demo_dir / ann.filename)
        assert image.format == "JPEG"
        assert (ann.width, ann.height) == image.size
        per_image.append(len(ann.boxes))
        for box in ann.boxes:
            names.append(box.name)
            assert 0 <= box.xmin < box.xmax < ann.width
            assert 0 <= box.ymin < box.ymax < ann.height
            assert box.xmax - box.xmin >= 30
    assert set(names) == set(CLASSES) and len(CLASSES) >= 4
    assert 0 in per_image, "some pictures must have no painting"
    assert max(per_image) >= 2, "some pictures must have several paintings"


def test_boxes_cover_the_paintings_not_the_wall(demo_dir: Path) -> None:
    """Inside a box the pixels differ from the wall just outside it."""
    contrasts = []
    for xml in sorted(demo_dir.glob("*.xml")):
        ann = read_voc(xml)
        pixels = np.asarray(Image.open(demo_dir / ann.filename), np.float32)
        for box in ann.boxes:
            x0, y0, x1, y1 = int(box.xmin), int(box.ymin), int(box.xmax), int(box.ymax)
            inside = pixels[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3].std(axis=(0, 1)).mean()
            contrasts.append(inside)
    # Paintings have structure; a plain wall patch has only noise (std ~ 3-5).
    assert np.median(contrasts) > 20

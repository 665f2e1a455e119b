"""Data stages (resize, split, CSV, label map, TFRecord) against the classic tutorial and the floor.

Baseline: the tutorial's way, one ElementTree pass over the XML into a pandas CSV,
then a per-row loop that reads the raw image bytes into tf.Example (no decoding,
validation or resizing). Floor: reading every image file once.
"""

from __future__ import annotations

import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from common import generated_dataset, median, raccoon, save, timed


def floor(dataset: Path) -> None:
    for path in dataset.rglob("*"):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            path.read_bytes()


def tutorial_baseline(dataset: Path, out: Path) -> None:
    import pandas as pd
    import tensorflow as tf

    rows = []
    for xml_file in sorted(dataset.rglob("*.xml")):
        root = ET.parse(xml_file).getroot()
        for member in root.findall("object"):
            box = member.find("bndbox")
            rows.append(
                (
                    str(xml_file.with_suffix(".jpg").name),
                    int(root.find("size/width").text),
                    int(root.find("size/height").text),
                    member.find("name").text,
                    int(float(box.find("xmin").text)),
                    int(float(box.find("ymin").text)),
                    int(float(box.find("xmax").text)),
                    int(float(box.find("ymax").text)),
                )
            )
    frame = pd.DataFrame(rows, columns=["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
    frame.to_csv(out / "labels.csv", index=False)
    images = {p.name: p for p in dataset.rglob("*.jpg")}
    with tf.io.TFRecordWriter(str(out / "baseline.record")) as writer:
        for filename, group in frame.groupby("filename"):
            encoded = images[filename].read_bytes()
            w, h = int(group.width.iloc[0]), int(group.height.iloc[0])
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/object/bbox/xmin": tf.train.Feature(float_list=tf.train.FloatList(value=list(group.xmin / w))),
                "image/object/bbox/xmax": tf.train.Feature(float_list=tf.train.FloatList(value=list(group.xmax / w))),
                "image/object/bbox/ymin": tf.train.Feature(float_list=tf.train.FloatList(value=list(group.ymin / h))),
                "image/object/bbox/ymax": tf.train.Feature(float_list=tf.train.FloatList(value=list(group.ymax / h))),
                "image/object/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1] * len(group))),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def artdet_stages(dataset: Path, out: Path) -> None:
    from artdet.data.prepare import prepare_dataset

    prepare_dataset(dataset, out, max_side=1280, max_bytes=200_000)


def measure(name: str, dataset: Path, images: int, repeats: int) -> dict:
    result = {"dataset": name, "images": images}
    for label, fn in (("floor", floor), ("tutorial", tutorial_baseline), ("artdet", artdet_stages)):

        def once(fn=fn) -> None:
            out = Path(tempfile.mkdtemp(prefix="bench-"))
            try:
                fn(dataset) if fn is floor else fn(dataset, out)
            finally:
                shutil.rmtree(out)

        seconds = median(timed(once, repeats))
        result[label] = {"seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1)}
    return result


def main() -> None:
    import tensorflow as tf  # noqa: F401  (import once, outside the timings)

    sets = [
        ("raccoon (real, 200)", raccoon(), 200, 3),
        ("generated 1,000", generated_dataset(1000), 1000, 3),
        ("generated 10,000", generated_dataset(10000), 10000, 1),
    ]
    results = [measure(name, path, count, repeats) for name, path, count, repeats in sets]
    rows = [
        [
            r["dataset"],
            r["floor"]["images_per_s"],
            r["tutorial"]["images_per_s"],
            r["artdet"]["images_per_s"],
            round(r["artdet"]["images_per_s"] / r["tutorial"]["images_per_s"], 2),
            round(r["artdet"]["images_per_s"] / r["floor"]["images_per_s"], 3),
        ]
        for r in results
    ]
    headers = [
        "dataset",
        "floor: read files (img/s)",
        "tutorial baseline (img/s)",
        "artdet stages (img/s)",
        "artdet / tutorial",
        "artdet / floor",
    ]
    save(
        "data_prep",
        ("artdet data stages on 10,000 images", results[-1]["artdet"]["images_per_s"], "images/s"),
        {"Data stages, images/s (median of 3 runs; 1 run for 10,000)": (headers, rows)},
        {"runs": results},
    )


if __name__ == "__main__":
    main()

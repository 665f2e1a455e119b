"""Write TFRecords with the TF Object Detection API's tf.Example keys.

The tutorial's ``generate_tfrecord.py`` needs a hand-edited
``class_text_to_int`` that silently returns None for an unlisted label; here
the ids come from the generated label map and an unknown label is an error
that names the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tensorflow as tf

from artdet.dataset import Sample
from artdet.split import source_id


def _bytes(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values: list[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values: list[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def make_example(
    encoded: bytes,
    filename: str,
    source_id: str,
    width: int,
    height: int,
    boxes: list[dict],
    class_ids: dict[str, int],
) -> tf.train.Example:
    """One tf.Example; ``boxes`` hold pixel corners and a class name each."""
    image_format = b"png" if encoded[:8] == b"\x89PNG\r\n\x1a\n" else b"jpeg"
    unknown = sorted({b["class"] for b in boxes} - class_ids.keys())
    if unknown:
        raise ValueError(f"{filename}: labels {unknown} are not in the label map")
    feature = {
        "image/encoded": _bytes([encoded]),
        "image/format": _bytes([image_format]),
        "image/height": _ints([height]),
        "image/width": _ints([width]),
        "image/filename": _bytes([filename.encode()]),
        "image/source_id": _bytes([source_id.encode()]),
        "image/object/bbox/xmin": _floats([b["xmin"] / width for b in boxes]),
        "image/object/bbox/xmax": _floats([b["xmax"] / width for b in boxes]),
        "image/object/bbox/ymin": _floats([b["ymin"] / height for b in boxes]),
        "image/object/bbox/ymax": _floats([b["ymax"] / height for b in boxes]),
        "image/object/class/text": _bytes([b["class"].encode() for b in boxes]),
        "image/object/class/label": _ints([class_ids[b["class"]] for b in boxes]),
        "image/object/difficult": _ints([int(b.get("difficult", 0)) for b in boxes]),
        "image/object/truncated": _ints([int(b.get("truncated", 0)) for b in boxes]),
        "image/object/is_crowd": _ints([0 for _ in boxes]),
        "image/object/area": _floats([(b["xmax"] - b["xmin"]) * (b["ymax"] - b["ymin"]) for b in boxes]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_records(
    samples: list[Sample],
    sides: dict[str, str],
    split: str,
    images_dir: str | Path,
    class_ids: dict[str, int],
    out_path: str | Path,
) -> int:
    """Write every image of ``split`` (negatives included) to ``out_path``; return the count.

    Boxes keep the full precision of the manifest (the CSVs round to 0.01 px).
    """
    images_dir = Path(images_dir)
    count = 0
    with tf.io.TFRecordWriter(str(out_path)) as writer:
        for sample in samples:
            if sides[sample.image] != split:
                continue
            boxes = [{**obj, "class": obj["name"]} for obj in sample.objects]
            example = make_example(
                (images_dir / sample.image).read_bytes(),
                sample.image,
                source_id(sample.source or sample.image),
                sample.width,
                sample.height,
                boxes,
                class_ids,
            )
            writer.write(example.SerializeToString())
            count += 1
    return count


def concat_records(inputs: list[str | Path], out_path: str | Path) -> None:
    """Join TFRecord files into one (the format is a plain sequence of framed records).

    This gives the tutorial's single ``train.record`` from the sharded files.
    """
    with open(out_path, "wb") as out:
        for path in inputs:
            with open(path, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)


def read_examples(path: str | Path) -> list[dict]:
    """Decode a TFRecord file into plain dicts (for evaluation and tests)."""
    spec = {
        "image/encoded": tf.io.FixedLenFeature((), tf.string),
        "image/filename": tf.io.FixedLenFeature((), tf.string),
        "image/source_id": tf.io.FixedLenFeature((), tf.string),
        "image/height": tf.io.FixedLenFeature((), tf.int64),
        "image/width": tf.io.FixedLenFeature((), tf.int64),
        "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
        "image/object/class/label": tf.io.VarLenFeature(tf.int64),
        "image/object/class/text": tf.io.VarLenFeature(tf.string),
    }
    result = []
    for raw in tf.data.TFRecordDataset(str(path)):
        parsed = tf.io.parse_single_example(raw, spec)
        item = {}
        for key, value in parsed.items():
            item[key] = tf.sparse.to_dense(value).numpy() if isinstance(value, tf.SparseTensor) else value.numpy()
        result.append(item)
    return result

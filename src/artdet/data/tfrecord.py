"""Write TFRecords with the TF Object Detection API's tf.Example keys.

The tutorial's ``generate_tfrecord.py`` needs a hand-edited
``class_text_to_int`` that silently returns None for an unlisted label; here
the ids come from the generated label map and an unknown label is an error
that names the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from artdet.data.dataset import Sample
from artdet.data.example_proto import Example, RecordWriter
from artdet.data.split import source_id


def make_example(
    encoded: bytes,
    filename: str,
    source_id: str,
    width: int,
    height: int,
    boxes: list[dict],
    class_ids: dict[str, int],
) -> Example:
    """One tf.train.Example; ``boxes`` hold pixel corners and a class name each."""
    image_format = b"png" if encoded[:8] == b"\x89PNG\r\n\x1a\n" else b"jpeg"
    unknown = sorted({b["class"] for b in boxes} - class_ids.keys())
    if unknown:
        raise ValueError(f"{filename}: labels {unknown} are not in the label map")
    values = {
        "image/encoded": ("bytes_list", [encoded]),
        "image/format": ("bytes_list", [image_format]),
        "image/height": ("int64_list", [height]),
        "image/width": ("int64_list", [width]),
        "image/filename": ("bytes_list", [filename.encode()]),
        "image/source_id": ("bytes_list", [source_id.encode()]),
        "image/object/bbox/xmin": ("float_list", [b["xmin"] / width for b in boxes]),
        "image/object/bbox/xmax": ("float_list", [b["xmax"] / width for b in boxes]),
        "image/object/bbox/ymin": ("float_list", [b["ymin"] / height for b in boxes]),
        "image/object/bbox/ymax": ("float_list", [b["ymax"] / height for b in boxes]),
        "image/object/class/text": ("bytes_list", [b["class"].encode() for b in boxes]),
        "image/object/class/label": ("int64_list", [class_ids[b["class"]] for b in boxes]),
        "image/object/difficult": ("int64_list", [int(b.get("difficult", 0)) for b in boxes]),
        "image/object/truncated": ("int64_list", [int(b.get("truncated", 0)) for b in boxes]),
        "image/object/is_crowd": ("int64_list", [0 for _ in boxes]),
        "image/object/area": ("float_list", [(b["xmax"] - b["xmin"]) * (b["ymax"] - b["ymin"]) for b in boxes]),
    }
    example = Example()
    features = example.features.feature
    for key, (kind, items) in values.items():
        values_list = getattr(features[key], kind)
        values_list.SetInParent()  # an empty list still says which kind it is, as TensorFlow writes it
        values_list.value.extend(items)
    return example


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
    with RecordWriter(out_path) as writer:
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
            # Deterministic: protobuf map order otherwise varies between processes, and the same
            # images must give the same bytes on any machine (tests/cluster/test_slurm.py).
            writer.write(example.SerializeToString(deterministic=True))
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
    """Decode a TFRecord file into plain dicts with TensorFlow's own parser (for evaluation and tests)."""
    import tensorflow as tf

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

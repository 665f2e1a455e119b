"""Resize the dataset's images to the configured limits and rescale their boxes.

The tutorial asks for images "under 200 KB and at most 720x1280" and leaves
the boxes to the user; here the boxes are scaled with the image, images that
already fit are copied byte for byte, and JPEGs are shrunk with Pillow's draft
mode (the decoder skips the resolution it will throw away).
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from PIL import Image

from artdet.dataset import Sample, find_pairs, write_manifest
from artdet.voc import read_voc

log = logging.getLogger(__name__)


def _load_rgb(path: Path, size: tuple[int, int]) -> Image.Image:
    """The image as 8-bit RGB; a JPEG is decoded at the smallest power-of-two scale not below ``size``."""
    image = Image.open(path)
    if image.format == "JPEG":
        image.draft(image.mode, size)
    if image.mode in {"RGBA", "LA", "P", "PA"}:
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if image.mode.startswith("I;16") or image.mode == "I":
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")


def _encode(image: Image.Image, max_bytes: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    """JPEG bytes within ``max_bytes`` and the size they were encoded at.

    The quality drops in steps to 60; if that is not enough, the image shrinks
    by 20% at a time (the caller rescales the boxes to the returned size).
    """
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        data = buffer.getvalue()
        if len(data) <= max_bytes or min(image.size) <= 16:
            return data, image.size
        if quality > 60:
            quality -= 10
        else:
            size = (max(1, round(image.width * 0.8)), max(1, round(image.height * 0.8)))
            image = image.resize(size, Image.Resampling.LANCZOS)


def clip_boxes(objects: list[dict], width: int, height: int, source: Path) -> list[dict]:
    """Clip boxes to the image and put corners in order; drop empty ones with a warning."""
    kept = []
    for index, obj in enumerate(objects):
        x0, x1 = sorted((obj["xmin"], obj["xmax"]))
        y0, y1 = sorted((obj["ymin"], obj["ymax"]))
        x0, x1 = max(0.0, x0), min(float(width), x1)
        y0, y1 = max(0.0, y0), min(float(height), y1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            log.warning("%s: object %d (%s) has no area inside the image; dropped", source, index, obj["name"])
            continue
        kept.append({**obj, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1})
    return kept


def resize_dataset(
    dataset: str | Path,
    out_dir: str | Path,
    manifest: str | Path,
    max_side: int = 1280,
    max_bytes: int = 200_000,
    quality: int = 90,
) -> list[Sample]:
    """Write resized copies of every image under ``out_dir`` and list them in ``manifest``.

    Each image keeps its path relative to ``dataset``; PNG and other formats
    become JPEG when they must be re-encoded.
    """
    dataset, out_dir = Path(dataset), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for image_path, xml_path in find_pairs(dataset):
        relative = image_path.relative_to(dataset)
        annotation = read_voc(xml_path) if xml_path else None
        with Image.open(image_path) as probe:
            width, height = probe.size
            fmt = probe.format
        scale = min(1.0, max_side / max(width, height))
        fits = scale == 1.0 and fmt == "JPEG" and image_path.stat().st_size <= max_bytes
        if fits:
            target = out_dir / relative
            data = image_path.read_bytes()
            new_w, new_h = width, height
        else:
            new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
            image = _load_rgb(image_path, (new_w, new_h))
            if image.size != (new_w, new_h):
                image = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
            target = (out_dir / relative).with_suffix(".jpg")
            data, (new_w, new_h) = _encode(image, max_bytes, quality)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        sx, sy = new_w / width, new_h / height
        objects = []
        if annotation is not None:
            for box in annotation.boxes:
                objects.append(
                    {
                        "name": box.name.strip(),
                        "xmin": box.xmin * sx,
                        "ymin": box.ymin * sy,
                        "xmax": box.xmax * sx,
                        "ymax": box.ymax * sy,
                        "difficult": box.difficult,
                        "truncated": box.truncated,
                    }
                )
        objects = clip_boxes(objects, new_w, new_h, xml_path or image_path)
        samples.append(
            Sample(
                image=str(target.relative_to(out_dir)),
                annotation=str(xml_path.relative_to(dataset)) if xml_path else None,
                width=new_w,
                height=new_h,
                objects=objects,
                sha1=hashlib.sha1(data).hexdigest(),
            )
        )
    write_manifest(samples, manifest)
    log.info("resized %d images (%d boxes) into %s", len(samples), sum(len(s.objects) for s in samples), out_dir)
    return samples

"""Resize the validated images to the configured limits and rescale their boxes.

The tutorial asks for images "under 200 KB and at most 720x1280" and leaves
the boxes to the user; here the boxes are scaled with the image, images that
already fit (upright 8-bit RGB JPEGs and PNGs) are copied byte for byte, JPEGs are
shrunk with Pillow's draft mode (the decoder skips the resolution it will
throw away), and everything else (grey-scale, palette, RGBA, CMYK, 16-bit,
EXIF-rotated, BMP/GIF/WebP/TIFF) is turned upright and re-encoded as RGB JPEG.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from PIL import Image

from artdet.data.dataset import Sample, write_manifest
from artdet.data.validate import ORIENT_TRANSPOSE, DatasetValidation
from artdet.defaults import default

log = logging.getLogger(__name__)


def _load_rgb(path: Path, size: tuple[int, int], orientation: int = 1) -> Image.Image:
    """The image upright as 8-bit RGB.

    A JPEG is decoded at the smallest power-of-two scale not below ``size``
    (given upright, so it is swapped for a 90-degree EXIF turn).
    """
    image = Image.open(path)
    if image.format == "JPEG":
        image.draft(image.mode, size[::-1] if orientation >= 5 else size)
    transpose = ORIENT_TRANSPOSE.get(orientation)
    if transpose is not None:
        image = image.transpose(transpose)
    if image.mode in {"RGBA", "LA", "P", "PA"}:
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey: scale 0..65535 to 0..255 (Pillow's convert("L") would clip instead).
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


def resize_images(
    dataset: str | Path,
    validation: DatasetValidation,
    out_dir: str | Path,
    manifest: str | Path,
    max_side: int = default("resize.max_side"),
    max_bytes: int = default("resize.max_bytes"),
    quality: int = 90,
) -> list[Sample]:
    """Write a resized copy of every validated image under ``out_dir`` and list them in ``manifest``.

    Each image keeps its path relative to ``dataset`` (with a ``.jpg`` suffix
    when it is re-encoded); the boxes are scaled exactly with it.
    """
    dataset, out_dir = Path(dataset), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for item in validation.images:
        source = dataset / item.source
        width, height = item.width, item.height
        scale = min(1.0, max_side / max(width, height))
        fits = (
            scale == 1.0
            and item.format in {"JPEG", "PNG"}
            and item.mode == "RGB"
            and item.orientation == 1
            and source.stat().st_size <= max_bytes
        )
        if fits:
            target = out_dir / item.source
            data = source.read_bytes()
            new_w, new_h = width, height
        else:
            new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
            image = _load_rgb(source, (new_w, new_h), item.orientation)
            if image.size != (new_w, new_h):
                image = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
            target = (out_dir / item.source).with_suffix(".jpg")
            data, (new_w, new_h) = _encode(image, max_bytes, quality)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        sx, sy = new_w / width, new_h / height
        objects = [
            {
                **obj,
                "xmin": obj["xmin"] * sx,
                "ymin": obj["ymin"] * sy,
                "xmax": obj["xmax"] * sx,
                "ymax": obj["ymax"] * sy,
            }
            for obj in item.objects
        ]
        samples.append(
            Sample(
                image=target.relative_to(out_dir).as_posix(),
                annotation=item.annotation,
                width=new_w,
                height=new_h,
                objects=objects,
                sha1=hashlib.sha1(data).hexdigest(),
                source=item.source,
                source_sha1=item.source_sha1,
                dhash=item.dhash,
            )
        )
    write_manifest(samples, manifest)
    log.info("resized %d images (%d boxes) into %s", len(samples), sum(len(s.objects) for s in samples), out_dir)
    return samples

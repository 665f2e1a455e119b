"""Generate the demo datasets: procedural "paintings" photographed on gallery walls.

A user without their own labelled photos can still run the whole workflow. The
pictures are painted from a seeded random generator (one generator per image,
so the same seed gives the same bytes, and asking for more images keeps the
first ones unchanged) and saved with XML exactly as LabelImg writes it.

Two variants: ``gallery`` (four styles that look nothing alike) and
``lookalike``, three portraits of one sitter that differ only in a small
attribute, as a jack, queen and king differ only in a small figure. A young
model hesitates between look-alike classes, which is where a post-processing
that keeps one class per box, or a metric that looks only at the top class,
loses accuracy unseen; the demo's distinct classes never show it.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from artdet.data.voc import Annotation, Box, write_voc
from artdet.defaults import default

CLASSES = ("portrait", "landscape", "abstract", "nocturne")
WALL_COLOURS = [(222, 214, 196), (190, 190, 186), (120, 40, 44), (40, 84, 88), (236, 232, 224), (70, 70, 78)]
FRAME_COLOURS = [(176, 138, 52), (92, 58, 30), (30, 28, 26), (200, 200, 196)]


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ys / max(h - 1, 1), xs / max(w - 1, 1)


def _paint_portrait(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = _grid(h, w)
    bg = np.array(rng.choice([(58, 40, 26), (30, 34, 30), (70, 52, 40)]), np.float32)
    img = np.broadcast_to(bg, (h, w, 3)).copy() * (0.7 + 0.3 * (1 - y))[..., None]
    cx = 0.5 + rng.uniform(-0.06, 0.06)
    body = (y > 0.62) & (np.abs(x - cx) < 0.18 + (y - 0.62) * 0.9)
    img[body] = rng.choice([(24, 24, 60), (80, 20, 20), (20, 20, 20)])
    face = ((x - cx) / 0.17) ** 2 + ((y - 0.42) / 0.24) ** 2 < 1
    img[face] = np.array((222, 180, 140), np.float32) * rng.uniform(0.8, 1.05)
    hair = (((x - cx) / 0.2) ** 2 + ((y - 0.33) / 0.22) ** 2 < 1) & ~face & (y < 0.45)
    img[hair] = rng.choice([(40, 26, 14), (90, 60, 30), (20, 16, 12)])
    return img


def _paint_landscape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = _grid(h, w)
    sky_top, sky_bottom = np.array((70, 130, 210), np.float32), np.array((200, 220, 240), np.float32)
    img = sky_top * (1 - y[..., None]) + sky_bottom * y[..., None]
    phase, freq = rng.uniform(0, 6.28), rng.uniform(2, 5)
    horizon = 0.55 + 0.08 * np.sin(x * freq + phase)
    img[y > horizon] = (60, 140, 60)
    near = 0.75 + 0.06 * np.sin(x * freq * 1.7 + phase * 2)
    img[y > near] = (40, 100, 40)
    sx, sy = rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.3)
    sun = ((x - sx) * w) ** 2 + ((y - sy) * h) ** 2 < (0.09 * min(h, w)) ** 2
    img[sun] = (250, 220, 90)
    return img


def _paint_abstract(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 240, np.float32)
    xs = np.sort(rng.uniform(0.15, 0.85, 2))
    ys = np.sort(rng.uniform(0.15, 0.85, 2))
    colours = [(210, 30, 30), (30, 60, 170), (240, 200, 30)]
    cells = [(0, 0), (1, 2), (2, 1)]
    bx = [0, *(int(v * w) for v in xs), w]
    by = [0, *(int(v * h) for v in ys), h]
    for colour, (i, j) in zip(colours, cells, strict=True):
        img[by[i] : by[i + 1], bx[j] : bx[j + 1]] = colour
    line = max(2, min(h, w) // 28)
    for v in bx[1:-1]:
        img[:, max(0, v - line // 2) : v + line // 2 + 1] = 15
    for v in by[1:-1]:
        img[max(0, v - line // 2) : v + line // 2 + 1, :] = 15
    return img


def _paint_nocturne(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = _grid(h, w)
    swirl = np.sin(10 * x + 6 * np.sin(5 * y + rng.uniform(0, 6.28)))
    img = np.stack([20 + 15 * swirl, 30 + 20 * swirl, 90 + 40 * swirl], axis=-1).astype(np.float32)
    for _ in range(int(rng.integers(5, 10))):
        sx, sy, r = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.6), rng.uniform(0.03, 0.07)
        star = ((x - sx) * w) ** 2 + ((y - sy) * h) ** 2 < (r * min(h, w)) ** 2
        img[star] = (250, 230, 110)
    img[y > 0.8] = (15, 15, 25)
    return img


def _sitter(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The one sitter of the look-alike portraits: fixed colours, so only the attribute tells them apart."""
    y, x = _grid(h, w)
    img = np.broadcast_to(np.array((52, 40, 30), np.float32), (h, w, 3)).copy() * (0.75 + 0.25 * (1 - y))[..., None]
    cx = 0.5 + rng.uniform(-0.04, 0.04)
    img[(y > 0.62) & (np.abs(x - cx) < 0.18 + (y - 0.62) * 0.9)] = (30, 30, 64)
    face = ((x - cx) / 0.17) ** 2 + ((y - 0.42) / 0.24) ** 2 < 1
    img[face] = np.array((222, 180, 140), np.float32) * rng.uniform(0.9, 1.05)
    img[(((x - cx) / 0.2) ** 2 + ((y - 0.33) / 0.22) ** 2 < 1) & ~face & (y < 0.45)] = (60, 40, 22)
    return img


def _paint_countess(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The sitter holding a red rose at her shoulder."""
    img = _sitter(rng, h, w)
    y, x = _grid(h, w)
    img[((x - 0.72) / 0.09) ** 2 + ((y - 0.74) / 0.08) ** 2 < 1] = (200, 30, 40)
    return img


def _paint_duchess(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The sitter holding a white fan at her shoulder."""
    img = _sitter(rng, h, w)
    y, x = _grid(h, w)
    img[(y > 0.66) & (y < 0.84) & (np.abs(x - 0.72) < (0.84 - y) * 0.7)] = (236, 236, 226)
    return img


def _paint_queen(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The sitter wearing a gold crown."""
    img = _sitter(rng, h, w)
    y, x = _grid(h, w)
    band = (np.abs(x - 0.5) < 0.13) & (y > 0.1) & (y < 0.16)
    points = (np.abs(x - 0.5) < 0.13) & (y > 0.04) & (y <= 0.1) & (np.sin((x - 0.37) / 0.26 * 3 * np.pi) > 0.3)
    img[band | points] = (236, 196, 60)
    return img


PAINTERS = {
    "portrait": _paint_portrait,
    "landscape": _paint_landscape,
    "abstract": _paint_abstract,
    "nocturne": _paint_nocturne,
    "countess": _paint_countess,
    "duchess": _paint_duchess,
    "queen": _paint_queen,
}
# Each variant's classes; the painters above paint them.
VARIANTS = {"gallery": CLASSES, "lookalike": ("countess", "duchess", "queen")}


def _framed(rng: np.random.Generator, cls: str, w: int, h: int) -> Image.Image:
    """A painting of class ``cls`` with its frame, as an RGB image of size w x h."""
    border = max(3, int(min(w, h) * rng.uniform(0.05, 0.1)))
    frame = np.array(FRAME_COLOURS[int(rng.integers(len(FRAME_COLOURS)))], np.float32)
    canvas = np.empty((h, w, 3), np.float32)
    canvas[:] = frame
    ih, iw = h - 2 * border, w - 2 * border
    canvas[border : border + ih, border : border + iw] = PAINTERS[cls](rng, ih, iw)
    # A bevel: the frame's top-left catches the light, its bottom-right is in shadow.
    canvas[: border // 2, :] *= 1.15
    canvas[-(border // 2) :, :] *= 0.75
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def _wall(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    _, x = _grid(height, width)
    colour = np.array(WALL_COLOURS[int(rng.integers(len(WALL_COLOURS)))], np.float32)
    wall = np.broadcast_to(colour, (height, width, 3)).copy()
    wall += rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    if rng.random() < 0.7:
        floor = int(height * rng.uniform(0.82, 0.92))
        wood = np.array((120, 84, 50), np.float32) * rng.uniform(0.7, 1.2)
        wall[floor:] = wood + 10 * np.sin(x[floor:, :, None] * 90)
    return wall


def _perspective(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """Squeeze one vertical side of the painting a little, as seen slightly from the side."""
    w, h = img.size
    squeeze = rng.uniform(0.0, 0.1) * h
    left = rng.random() < 0.5
    # PIL's QUAD maps the corners of the output to these points of the input.
    # Shrinking one side in the output = stretching that side's source span.
    quad_out = [
        (0, squeeze if left else 0),
        (w, 0 if left else squeeze),
        (w, h if left else h - squeeze),
        (0, h - squeeze if left else h),
    ]
    poly_mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(poly_mask).polygon(quad_out, fill=255)
    coeffs = _perspective_coeffs(quad_out, [(0, 0), (w, 0), (w, h), (0, h)])
    warped = img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    return warped, poly_mask


def _perspective_coeffs(dst: list[tuple[float, float]], src: list[tuple[float, float]]) -> list[float]:
    """The 8 coefficients PIL needs to map output points ``dst`` to input points ``src``."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, np.float64)
    b = np.array([c for point in src for c in point], np.float64)
    return np.linalg.solve(a, b).tolist()


def _overlaps(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]], gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap for b in placed)


def render_scene(
    seed: int, index: int, width: int = 400, height: int = 300, variant: str = "gallery"
) -> tuple[bytes, list[Box]]:
    """Render picture ``index`` of the dataset with seed ``seed``: JPEG bytes and its boxes."""
    classes = VARIANTS[variant]
    rng = np.random.default_rng([seed, index])
    wall = _wall(rng, width, height)
    scene = Image.fromarray(np.clip(wall, 0, 255).astype(np.uint8))
    count = int(rng.choice([0, 1, 1, 2, 2, 3], p=[0.1, 0.2, 0.2, 0.2, 0.15, 0.15]))
    placed: list[tuple[int, int, int, int]] = []
    boxes: list[Box] = []
    for _ in range(count):
        cls = classes[int(rng.integers(len(classes)))]
        for _attempt in range(30):
            side = rng.uniform(50, 140)
            aspect = rng.uniform(0.65, 1.5)
            w = int(min(side * math.sqrt(aspect), width * 0.6))
            h = int(min(side / math.sqrt(aspect), height * 0.6))
            x0 = int(rng.integers(4, width - w - 4))
            y0 = int(rng.integers(4, max(5, int(height * 0.85) - h)))
            if not _overlaps((x0, y0, x0 + w, y0 + h), placed, gap=6):
                break
        else:
            continue
        painting, mask = _perspective(_framed(rng, cls, w, h), rng)
        shadow = Image.new("RGB", (w, h), (0, 0, 0))
        behind = scene.crop((x0 + 3, y0 + 3, x0 + w + 3, y0 + h + 3))
        scene.paste(Image.blend(behind, shadow, 0.35), (x0 + 3, y0 + 3), mask)
        scene.paste(painting, (x0, y0), mask)
        bbox = mask.getbbox() or (0, 0, w, h)
        placed.append((x0, y0, x0 + w, y0 + h))
        boxes.append(Box(cls, x0 + bbox[0], y0 + bbox[1], x0 + bbox[2] - 1, y0 + bbox[3] - 1))

    draw = ImageDraw.Draw(scene)
    if boxes and rng.random() < 0.35:
        # A visitor standing in front of the wall hides part of a painting.
        target = boxes[int(rng.integers(len(boxes)))]
        cx = int(rng.uniform(target.xmin, target.xmax))
        body_w = int(rng.uniform(22, 40))
        top = int(rng.uniform(target.ymin + (target.ymax - target.ymin) * 0.4, target.ymax))
        colour = tuple(int(c) for c in rng.integers(10, 90, 3))
        draw.ellipse((cx - body_w // 3, top - body_w // 1.5, cx + body_w // 3, top), fill=colour)
        draw.rounded_rectangle((cx - body_w // 2, top, cx + body_w // 2, height + 10), radius=8, fill=colour)
        target.truncated = True

    pixels = np.asarray(scene, np.float32)
    y, x = _grid(height, width)
    lx, ly = rng.uniform(0.2, 0.8), rng.uniform(-0.2, 0.3)
    light = 1.15 - 0.6 * np.sqrt((x - lx) ** 2 + (y - ly) ** 2) * rng.uniform(0.4, 1.0)
    tint = rng.uniform(0.85, 1.12, 3).astype(np.float32)
    pixels = pixels * light[..., None] * tint * rng.uniform(0.75, 1.15)
    pixels += rng.normal(0, 3, pixels.shape).astype(np.float32)
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), boxes


def generate(
    out_dir: str | Path,
    count: int = default("demo.count"),
    seed: int = default("demo.seed"),
    width: int = 400,
    height: int = 300,
    variant: str = "gallery",
) -> int:
    """Write ``count`` pictures and their LabelImg XML into ``out_dir``; return the box count."""
    if variant not in VARIANTS:
        raise ValueError(f"demo variant {variant!r}: choose one of {sorted(VARIANTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for index in range(count):
        stem = f"gallery_{index:05d}"
        jpeg, boxes = render_scene(seed, index, width, height, variant)
        (out / f"{stem}.jpg").write_bytes(jpeg)
        annotation = Annotation(
            filename=f"{stem}.jpg",
            width=width,
            height=height,
            boxes=boxes,
            folder=out.name,
            path=str((out / f"{stem}.jpg").resolve()),
        )
        write_voc(annotation, out / f"{stem}.xml")
        total += len(boxes)
    return total

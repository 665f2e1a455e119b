"""Generate the classifier's demo: photos of 20 procedurally painted artworks, and of others.

The recognition task of a museum app is "which of our works is this photo of?":
the same painting seen from an angle, near or far, under warm or cold light,
with a visitor's shoulder in front of it. Each work here is painted once from
its own seeded generator (so a work looks the same in every photo and a seed
gives the same bytes), then photographed many times with those changes.
``OUT-unseen/`` holds photos of paintings that are not in the collection, for
the test that the classifier answers "unknown" to them instead of guessing.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from artdet.data.demo import FRAME_COLOURS, WALL_COLOURS

WORKS = (
    "annunciation",
    "bathers",
    "cathedral",
    "dancers",
    "harbour",
    "haystacks",
    "irises",
    "lighthouse",
    "market",
    "nightwatch",
    "orchard",
    "poppies",
    "regatta",
    "saint_jerome",
    "skaters",
    "still_life",
    "sunflowers",
    "tempest",
    "vineyard",
    "waterlilies",
)
# Works 0..19 are the collection; unseen paintings use indices from this offset, never in it.
UNSEEN_OFFSET = 1000


def paint_artwork(seed: int, work: int, width: int = 240, height: int = 300) -> Image.Image:
    """Artwork ``work``: a layered composition of gradients, shapes and brush strokes.

    Shapes with corners and strokes give the local features a recogniser keys on; two
    works share no shape, so telling them apart is possible, as it is for real paintings.
    """
    rng = np.random.default_rng([seed, 7919, work])
    ys = np.mgrid[0:height, 0:width][0].astype(np.float32)
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = (ys / height)[..., None]
    base = top * (1 - t) + bottom * t
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    palette = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(6)]
    for _ in range(int(rng.integers(18, 30))):
        colour = palette[int(rng.integers(len(palette)))]
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.05, 0.35) * width, rng.uniform(0.05, 0.35) * height
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 2:
            points = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(int(rng.integers(3, 6)))]
            draw.polygon(points, fill=colour)
        else:
            points = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(4)]
            draw.line(points, fill=colour, width=int(rng.integers(2, 7)))
    for _ in range(int(rng.integers(40, 80))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        angle, length = rng.uniform(0, np.pi), rng.uniform(4, 14)
        colour = palette[int(rng.integers(len(palette)))]
        draw.line((x, y, x + length * np.cos(angle), y + length * np.sin(angle)), fill=colour, width=2)
    return image.filter(ImageFilter.SMOOTH)


def _framed(rng: np.random.Generator, painting: Image.Image) -> np.ndarray:
    w, h = painting.size
    border = int(min(w, h) * 0.07)
    canvas = np.empty((h + 2 * border, w + 2 * border, 3), np.float32)
    canvas[:] = FRAME_COLOURS[int(rng.integers(len(FRAME_COLOURS)))]
    canvas[border : border + h, border : border + w] = np.asarray(painting, np.float32)
    return canvas


def photograph(painting: Image.Image, rng: np.random.Generator, width: int = 400, height: int = 300) -> bytes:
    """One photo of ``painting`` on a gallery wall: angle, distance, light, occlusion, blur, noise."""
    wall = np.empty((height, width, 3), np.float32)
    wall[:] = WALL_COLOURS[int(rng.integers(len(WALL_COLOURS)))]
    wall += rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    framed = _framed(rng, painting)
    fh, fw = framed.shape[:2]
    # Distance: the painting fills 55-95 % of the frame's height.
    scale = rng.uniform(0.55, 0.95) * height / fh
    w, h = fw * scale, fh * scale
    cx, cy = width / 2 + rng.uniform(-0.15, 0.15) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    corners = np.array(
        [[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]]
    )
    # Angle: seen from one side (the far edge shrinks), a little rotated, each corner jittered.
    side = rng.uniform(-0.22, 0.22) * h
    corners[[1, 2] if side > 0 else [0, 3], 1] += np.array([1, -1]) * abs(side) / 2
    theta = np.deg2rad(rng.uniform(-8, 8))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    corners = (corners - [cx, cy]) @ rot.T + [cx, cy] + rng.normal(0, 0.02 * h, (4, 2))
    source = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float32)
    matrix = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    warped = cv2.warpPerspective(framed, matrix, (width, height), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((fh, fw), np.float32), matrix, (width, height))[..., None]
    photo = wall * (1 - mask) + warped * mask
    # Light: a spotlight falloff, a warm or cold tint, brighter or darker exposure.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    lx, ly = rng.uniform(0.2, 0.8) * width, rng.uniform(-0.3, 0.3) * height
    falloff = 1.2 - 0.5 * np.sqrt((xx - lx) ** 2 + (yy - ly) ** 2) / width * rng.uniform(0.5, 1.2)
    photo = photo * falloff[..., None] * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.7, 1.2)
    image = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        # A visitor in front of the painting hides up to about a quarter of it.
        draw = ImageDraw.Draw(image)
        px = float(rng.uniform(corners[:, 0].min(), corners[:, 0].max()))
        body = rng.uniform(0.12, 0.25) * width
        top = min(float(rng.uniform(cy, corners[:, 1].max())), height - 20.0)
        colour = tuple(int(c) for c in rng.integers(10, 90, 3))
        draw.ellipse((px - body / 3, top - body / 1.4, px + body / 3, top), fill=colour)
        draw.rounded_rectangle((px - body / 2, top, px + body / 2, height + 10), radius=10, fill=colour)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    pixels = np.asarray(image, np.float32) + rng.normal(0, 3, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def generate(out_dir: str | Path, photos: int = 12, seed: int = 0, works: int = 20, unseen: int = 20) -> Path:
    """Write ``photos`` photos of each of ``works`` artworks into ``out_dir/<work>/``.

    Also writes one photo of each of ``unseen`` other paintings into ``<out_dir>-unseen/``
    (in folders named after them, so the folder reads as a class-folder dataset too).
    Returns the unseen folder.
    """
    if not 1 <= works <= len(WORKS):
        raise ValueError(f"works must be between 1 and {len(WORKS)}, not {works}")
    out = Path(out_dir)
    unseen_dir = out.parent / f"{out.name}-unseen"
    for index, name in enumerate(WORKS[:works]):
        painting = paint_artwork(seed, index)
        (out / name).mkdir(parents=True, exist_ok=True)
        for shot in range(photos):
            rng = np.random.default_rng([seed, index, shot])
            (out / name / f"{name}_{shot:03d}.jpg").write_bytes(photograph(painting, rng))
    for index in range(unseen):
        painting = paint_artwork(seed, UNSEEN_OFFSET + index)
        folder = unseen_dir / f"other_{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, UNSEEN_OFFSET + index, 0])
        (folder / f"other_{index:03d}.jpg").write_bytes(photograph(painting, rng))
    return unseen_dir

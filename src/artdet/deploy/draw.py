"""Draw detections on an image: a box, the class name and the score, a colour per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from artdet.deploy.runtime import Detection, one_per_box

# Distinct, readable colours (Tableau 10); class id N takes PALETTE[(N - 1) % 10].
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[(max(class_id, 1) - 1) % len(PALETTE)]


def draw_detections(
    image: np.ndarray,
    detections: Sequence[Detection],
    caption: str | None = None,
    scores: bool = True,
    alternatives: bool = False,
) -> np.ndarray:
    """A copy of the RGB ``image`` with the detections (and an optional caption) drawn on it.

    Each box is drawn once, labelled with its best class (:func:`~artdet.deploy.runtime.one_per_box`);
    ``alternatives=True`` adds its other classes as a short second line. ``scores=False`` labels
    boxes with the class only (for ground truth).
    """
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    font = ImageFont.load_default(size=max(11, round(max(canvas.size) / 45)))
    # The least sure first, so that a sure box's label is drawn over a doubtful neighbour's.
    for det in sorted(one_per_box(detections), key=lambda d: d.score):
        colour = class_colour(det.class_id)
        x0, y0, x1, y1 = det.box
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        label = f"{det.class_name} {det.score:.2f}" if scores else det.class_name
        if alternatives and det.alternatives:
            label += "\n" + ", ".join(f"{name} {score:.2f}" for name, score in det.alternatives[:2])
        left, top, right, bottom = draw.textbbox((x0, y0), label, font=font)
        top_y = y0 - (bottom - top) - 4 if y0 - (bottom - top) - 4 >= 0 else y0
        draw.rectangle((x0, top_y, x0 + (right - left) + 6, top_y + (bottom - top) + 4), fill=colour)
        draw.text((x0 + 3, top_y + 2 - (top - y0)), label, fill=(255, 255, 255), font=font)
    if caption:
        draw.rectangle((0, 0, draw.textlength(caption, font=font) + 10, font.size + 8), fill=(0, 0, 0))
        draw.text((5, 4), caption, fill=(255, 255, 0), font=font)
    return np.asarray(canvas)


GROUND_TRUTH = (0, 230, 0)


def draw_ground_truth(image: np.ndarray, boxes: Sequence[tuple[str, Sequence[float]]]) -> np.ndarray:
    """A copy of ``image`` with ground-truth boxes (name, (x0, y0, x1, y1)) as thin green frames, labelled below."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, round(max(canvas.size) / 55)))
    for name, (x0, y0, x1, y1) in boxes:
        draw.rectangle((x0, y0, x1, y1), outline=GROUND_TRUTH, width=1)
        draw.text((x0 + 2, y1 + 1), f"gt: {name}", fill=GROUND_TRUTH, font=font)
    return np.asarray(canvas)

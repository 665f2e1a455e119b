"""Run a trained detector on images, folders, globs, videos, cameras and streams.

The tutorial ends with three scripts whose model path, class count and
threshold are hard-coded. ``artdet detect MODEL SOURCE`` takes any of those
sources, decodes in a background thread while the model runs, batches frames
of the same size, writes annotated images or an annotated video plus the
detections as JSON lines or CSV, and reports images/s and time per stage.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from artdet.data.dataset import IMAGE_SUFFIXES
from artdet.deploy.draw import draw_detections
from artdet.deploy.runtime import Detection, Detector, one_per_box

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


class SourceError(ValueError):
    """A source that cannot be read at all (as opposed to one bad file in a folder)."""


@dataclass
class Frame:
    """One decoded image or video frame; ``error`` is set instead of ``pixels`` when decoding failed."""

    source: str
    index: int
    pixels: np.ndarray | None
    error: str | None = None
    decode_seconds: float = 0.0
    fps: float | None = None


@dataclass
class Stats:
    """Counts and per-stage seconds, summed over the run."""

    images: int = 0
    detections: int = 0
    skipped: list[str] = field(default_factory=list)
    decode: float = 0.0
    inference: float = 0.0
    draw: float = 0.0
    wall: float = 0.0

    def summary(self) -> str:
        per = max(self.images, 1) / 1000  # seconds -> milliseconds per image
        rate = self.images / self.wall if self.wall else 0.0
        return (
            f"{self.images} images, {self.detections} detections, {len(self.skipped)} skipped; "
            f"{rate:.1f} images/s; per image: decode {self.decode / per:.1f} ms, "
            f"inference {self.inference / per:.1f} ms, drawing {self.draw / per:.1f} ms"
        )


def _is_camera(source: str) -> bool:
    return source.isdigit() or source.split("://", 1)[0] in {"rtsp", "rtmp", "http", "https", "udp"}


def classify_source(source: str) -> str:
    """'camera', 'video', 'image', 'folder' or 'glob'; a missing path raises :class:`SourceError`."""
    if _is_camera(source):
        return "camera"
    path = Path(source)
    if path.is_dir():
        return "folder"
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return "video"
        if suffix in IMAGE_SUFFIXES:
            return "image"
        raise SourceError(
            f"{source}: not an image ({' '.join(sorted(IMAGE_SUFFIXES))}) "
            f"or a video ({' '.join(sorted(VIDEO_SUFFIXES))})"
        )
    if glob.has_magic(source):
        return "glob"
    raise SourceError(f"{source}: no such file or folder (nor a camera index like 0, nor a stream URL)")


def _image_files(source: str, kind: str) -> list[Path]:
    if kind == "image":
        return [Path(source)]
    paths = Path(source).rglob("*") if kind == "folder" else (Path(p) for p in glob.glob(source, recursive=True))
    files = sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{source}: no images found")
    return files


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"))


def _video_frames(source: str, kind: str) -> Iterator[Frame]:
    import cv2

    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        what = "camera" if kind == "camera" else "video"
        raise SourceError(f"{source}: cannot open this {what}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    try:
        while True:
            start = time.perf_counter()
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield Frame(source, index, rgb, decode_seconds=time.perf_counter() - start, fps=fps)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise SourceError(f"{source}: no frame could be read")


def iter_frames(source: str) -> Iterator[Frame]:
    """Decode the source lazily; a corrupt image in a folder yields a Frame with ``error`` set."""
    kind = classify_source(source)
    if kind in {"video", "camera"}:
        yield from _video_frames(source, kind)
        return
    for path in _image_files(source, kind):
        start = time.perf_counter()
        try:
            pixels = _read_image(path)
        except Exception as exc:  # Pillow raises many types for bad files
            if kind == "image":
                raise SourceError(f"{path}: cannot read this image ({exc})") from exc
            yield Frame(str(path), 0, None, error=f"{type(exc).__name__}: {exc}")
            continue
        yield Frame(str(path), 0, pixels, decode_seconds=time.perf_counter() - start)


def prefetch(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """Decode in a background thread so that decoding overlaps inference."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for frame in frames:
                box.put(frame)
        except BaseException as exc:
            box.put(exc)
        finally:
            box.put(done)

    threading.Thread(target=work, daemon=True, name="artdet-decode").start()
    while True:
        item = box.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    """Group consecutive decodable frames of the same shape; failed frames come alone."""
    pending: list[Frame] = []
    for frame in frames:
        if pending and (frame.pixels is None or len(pending) == size or frame.pixels.shape != pending[0].pixels.shape):
            yield pending
            pending = []
        if frame.pixels is None:
            yield [frame]
        else:
            pending.append(frame)
    if pending:
        yield pending


class _Writer:
    """Detections to a JSON-lines or CSV file."""

    FIELDS = ("file", "frame", "class", "class_id", "score", "xmin", "ymin", "xmax", "ymax", "alternatives")

    def __init__(self, path: Path):
        self.path = path
        self._handle = open(path, "w", newline="")  # noqa: SIM115 (closed in close())
        self._csv = csv.DictWriter(self._handle, fieldnames=self.FIELDS) if path.suffix == ".csv" else None
        if self._csv:
            self._csv.writeheader()

    def write(self, frame: Frame, det: Detection) -> None:
        row = {
            "file": frame.source,
            "frame": frame.index,
            "class": det.class_name,
            "class_id": det.class_id,
            "score": round(det.score, 4),
            **{k: round(v, 1) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), det.box, strict=True)},
            "alternatives": [{"class": name, "score": round(score, 4)} for name, score in det.alternatives],
        }
        if self._csv:
            row["alternatives"] = ";".join(f"{a['class']}:{a['score']}" for a in row["alternatives"])
            self._csv.writerow(row)
        else:
            self._handle.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self._handle.close()


def _point_source(detector: Detector) -> str:
    point = detector.operating_point
    return point.get("source", "operating_point.json") if point else "none stored: detect.unfitted_min_score"


def _can_show() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(
    model: str | Path,
    source: str,
    out_dir: str | Path,
    min_score: float | None = None,
    max_detections: int = 100,
    classes: list[str] | None = None,
    output_format: str = "jsonl",
    batch_size: int = 4,
    show: bool = False,
    save_media: bool = True,
    alternatives: bool = False,
) -> Stats:
    """Detect objects in ``source``; write annotated media and detections under ``out_dir``.

    Each box is listed and drawn once, with its best class; the other classes the model found
    for it are in its ``alternatives`` (and drawn as a second line with ``alternatives=True``).
    ``min_score`` None is the model's own threshold (fitted on the val split at export).
    """
    kind = classify_source(source)
    detector = Detector(model)
    if min_score is None:
        min_score = detector.default_min_score
        log.info("min_score %.3f: the model's own (%s)", min_score, _point_source(detector))
    if classes:
        unknown = sorted(set(classes) - set(detector.labels.values()))
        if unknown:
            raise ValueError(f"--classes {unknown} are not classes of this model: {sorted(detector.labels.values())}")
    if show and not _can_show():
        log.warning("--show needs a display (DISPLAY is not set); running headless")
        show = False
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out_dir / f"detections.{'csv' if output_format == 'csv' else 'jsonl'}")
    stats = Stats()
    videos: dict[str, object] = {}
    base = Path(source) if kind == "folder" else None
    start = time.perf_counter()
    shown_at = time.perf_counter()
    try:
        for group in batches(prefetch(iter_frames(source)), batch_size if kind in {"folder", "glob"} else 1):
            if group[0].pixels is None:
                stats.skipped.append(group[0].source)
                log.warning("skipped %s: %s", group[0].source, group[0].error)
                continue
            stats.decode += sum(f.decode_seconds for f in group)
            t0 = time.perf_counter()
            results = detector.detect_batch([f.pixels for f in group], min_score=min_score)
            stats.inference += time.perf_counter() - t0
            for frame, dets in zip(group, results, strict=True):
                if classes:
                    dets = [d for d in dets if d.class_name in classes]
                dets = one_per_box(dets)[:max_detections]
                stats.images += 1
                stats.detections += len(dets)
                for det in dets:
                    writer.write(frame, det)
                if not (save_media or show):
                    continue
                t1 = time.perf_counter()
                caption = None
                if kind in {"video", "camera"}:
                    now = time.perf_counter()
                    caption = f"{1.0 / max(now - shown_at, 1e-6):.1f} fps"
                    shown_at = now
                annotated = draw_detections(frame.pixels, dets, caption, alternatives=alternatives)
                if save_media:
                    _save(annotated, frame, kind, base, out_dir, videos)
                if show and _show(annotated):
                    return stats
                stats.draw += time.perf_counter() - t1
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        stats.wall = time.perf_counter() - start
        writer.close()
        for video in videos.values():
            video.release()
    log.info("%s", stats.summary())
    return stats


def _save(annotated: np.ndarray, frame: Frame, kind: str, base: Path | None, out_dir: Path, videos: dict) -> None:
    from PIL import Image

    if kind in {"video", "camera"}:
        import cv2

        writer = videos.get(frame.source)
        if writer is None:
            stem = "camera" + frame.source if frame.source.isdigit() else Path(frame.source).stem or "stream"
            height, width = annotated.shape[:2]
            writer = cv2.VideoWriter(
                str(out_dir / f"{stem}_detections.mp4"),
                cv2.VideoWriter_fourcc(*"mp4v"),
                frame.fps or 25.0,
                (width, height),
            )
            videos[frame.source] = writer
        writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
        return
    path = Path(frame.source)
    relative = path.relative_to(base) if base is not None else Path(path.name)
    target = (out_dir / relative).with_suffix(".jpg")
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(annotated).save(target, quality=90)


def _show(annotated: np.ndarray) -> bool:
    """Show a frame in a window; True when the user pressed q or Esc."""
    import cv2

    try:
        cv2.imshow("artdet", cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) in {ord("q"), 27}
    except cv2.error as exc:
        raise SourceError(
            "this OpenCV build has no window support (opencv-python-headless); install opencv-python to use --show"
        ) from exc

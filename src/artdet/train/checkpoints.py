"""Pretrained checkpoints: a small registry, a download cache and a sha256 lock file.

Fine-tuning from COCO or ImageNet weights is what makes a few hundred labelled
photos enough. A registry entry names the archive Model Garden publishes and
the modules its weights initialise; ``fetch`` downloads it once into a cache
folder, checks that the checkpoint is complete, and records the sha256 of its
files in a lock file on first use, so that every later run (on this machine or
a cluster node) verifies it has the same weights. Nothing is downloaded unless
a model in config.yaml asks for a pretrained checkpoint; offline, the error
says which file to place where.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from artdet.train.hashing import update_from_file

BASE = "https://storage.googleapis.com/tf_model_garden/vision"
REGISTRY: dict[str, dict] = {
    "retinanet_resnet50_coco": {
        "url": f"{BASE}/retinanet/retinanet-resnet50fpn.tar.gz",
        "modules": ["backbone", "decoder"],
        "description": "RetinaNet ResNet-50-FPN 640, COCO (box AP 36.8); the heads start fresh",
    },
    "spinenet49_mobile_coco": {
        "url": f"{BASE}/retinanet/spinenet49mobile.tar.gz",
        "modules": ["backbone"],
        "description": "Mobile SpineNet-49 RetinaNet 384, COCO (box AP 28.1); the heads start fresh",
    },
    "resnet50_imagenet": {
        "url": f"{BASE}/resnet/resnet-50-i224.tar.gz",
        "modules": ["backbone"],
        "description": "ResNet-50 ImageNet classifier (top-1 77.1), for the backbone only",
    },
}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be fetched or verified; the message says what to do."""


def _entry(name: str) -> dict:
    try:
        return REGISTRY[name]
    except KeyError:
        raise CheckpointError(f"unknown pretrained checkpoint {name!r}; choose one of {sorted(REGISTRY)}") from None


def checkpoint_prefix(folder: Path) -> Path:
    """The checkpoint in ``folder`` (searched recursively), after checking that every data shard is there."""
    indexes = sorted(folder.rglob("*.index"))
    if not indexes:
        raise CheckpointError(f"{folder}: no checkpoint (*.index) found")
    index = indexes[-1]
    prefix = index.with_suffix("")
    shards = sorted(index.parent.glob(f"{prefix.name}.data-*-of-*"))
    if not shards:
        raise CheckpointError(f"{index}: its .data-* files are missing; the download is incomplete")
    total = int(re.search(r"-of-(\d+)$", shards[0].name).group(1))
    if len(shards) != total:
        raise CheckpointError(f"{prefix}: {len(shards)} of {total} data shards present; the download is incomplete")
    return prefix


def files_sha256(prefix: Path) -> str:
    """One sha256 over the checkpoint's index and data files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(prefix.parent.glob(f"{prefix.name}.*")):
        digest.update(path.name.encode())
        update_from_file(digest, path)
    return digest.hexdigest()


def _download(url: str, target: Path) -> None:
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"cannot download {url} ({exc}).\nWithout network: download it on another machine and place the "
            f"archive at {target}, or its extracted checkpoint files (<name>.index and <name>.data-*) in "
            f"{target.parent}/, then rerun."
        ) from exc
    tmp.replace(target)


def fetch(name: str, cache: str | Path, lock_path: str | Path, download: bool = True) -> dict:
    """The verified checkpoint of registry entry ``name``: {"name", "prefix", "modules", "sha256"}."""
    entry = _entry(name)
    folder = Path(cache).expanduser() / name
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / Path(entry["url"]).name
    if not any(folder.rglob("*.index")):
        if not archive.exists():
            if not download:
                raise CheckpointError(f"{archive} is missing and downloads are off")
            _download(entry["url"], archive)
        with tarfile.open(archive) as tar:
            tar.extractall(folder / "extracted", filter="data")
    prefix = checkpoint_prefix(folder)
    sha = files_sha256(prefix)
    lock_path = Path(lock_path)
    lock = json.loads(lock_path.read_text()) if lock_path.exists() else {}
    recorded = lock.get(name, {}).get("sha256")
    if recorded is None:
        lock[name] = {"url": entry["url"], "sha256": sha}
        lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    elif recorded != sha:
        raise CheckpointError(
            f"{prefix}: sha256 {sha[:12]}... differs from {recorded[:12]}... recorded in {lock_path}; the cached "
            f"files changed. Delete {folder} to fetch them again, or remove the entry from {lock_path} if the "
            "new weights are intended."
        )
    return {"name": name, "prefix": str(prefix.resolve()), "modules": entry["modules"], "sha256": sha}

"""What this machine offers for training, and which presets and mixed-precision mode fit it.

``artdet doctor`` prints it (``--json`` for a machine); it is the first step of
docs/cloud-gpu.md, and ``artdet train`` keeps the same record in each model folder
(``reproducibility.json``), so a result can be traced to the machine that made it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from artdet.train.presets import PRESETS

# GPU memory a preset needs at its reference batch size (float16 activations), in GiB: a
# rough bound from the model size and input, with room for TensorFlow's own pools. A smaller
# batch_size needs less.
GPU_MEMORY_GIB = {
    "ssd_mobilenet": 2,
    "faster_rcnn": 3,
    "ssd_spinenet_mobile": 14,
    "retinanet_resnet50": 12,
    "faster_rcnn_resnet50": 14,
}
# Presets sized for a CPU (the others want a GPU: hours per run on a CPU).
CPU_PRESETS = {"ssd_mobilenet", "faster_rcnn"}
PACKAGES = (
    "artdet",
    "tensorflow",
    "tf-models-official",
    "tf-keras",
    "keras",
    "numpy",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "snakemake-executor-plugin-kubernetes",
    "pycocotools",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _nvidia_smi() -> list[dict[str, Any]]:
    """Per GPU: name, driver, total and free memory in MiB, from nvidia-smi ([] without it)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,memory.free",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.strip().splitlines():
        name, driver, total, free = (part.strip() for part in line.split(","))
        rows.append({"name": name, "driver": driver, "memory_total_mib": int(total), "memory_free_mib": int(free)})
    return rows


def _cpu() -> dict[str, Any]:
    flags: set[str] = set()
    model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def _memory_gib() -> dict[str, float | None]:
    values: dict[str, float | None] = {"total": None, "available": None}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            if key in ("MemTotal", "MemAvailable"):
                values["total" if key == "MemTotal" else "available"] = round(int(value.split()[0]) / 2**20, 1)
    except OSError:
        pass
    return values


def mixed_precision_dtype(setting: str, gpus: list) -> str:
    """The compute dtype: ``auto`` is float16 on GPUs with tensor cores (compute capability >= 7.0).

    It lives here, below the trainer, because both the trainer (to set the policy) and
    :func:`collect` (to report it) need it.
    """
    if setting != "auto":
        return setting
    if not gpus:
        return "float32"
    import tensorflow as tf

    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return "float16" if tuple(capability) >= (7, 0) else "float32"


def collect(path: str | Path = ".") -> dict[str, Any]:
    """Everything ``artdet doctor`` reports, as a dict; ``path`` is where the free disk is measured."""
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    physical = tf.config.list_physical_devices("GPU")
    smi = _nvidia_smi()
    gpus = []
    for index, device in enumerate(physical):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        gpu = {
            "name": details.get("device_name"),
            "compute_capability": ".".join(map(str, capability)) if capability else None,
        }
        if index < len(smi):
            gpu.update({k: v for k, v in smi[index].items() if k != "name"})
        gpus.append(gpu)
    free_mib = min((g["memory_free_mib"] for g in gpus if "memory_free_mib" in g), default=None)
    presets = {}
    for name in PRESETS:
        need = GPU_MEMORY_GIB.get(name)
        if gpus:
            fits = free_mib is None or need is None or free_mib >= need * 1024
            why = f"needs about {need} GiB of GPU memory at batch {PRESETS[name]['batch_size']}" + (
                "" if fits else f"; {free_mib / 1024:.1f} GiB free: lower batch_size"
            )
        else:
            fits = name in CPU_PRESETS
            why = "sized for a CPU" if fits else "wants a GPU (hours per run on a CPU)"
        presets[name] = {"fits": fits, "why": why}
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    disk = shutil.disk_usage(path)
    return {
        "gpus": gpus,
        "gpu_summary": (
            f"{len(gpus)} GPU(s): " + ", ".join(f"{g['name']} (compute {g['compute_capability']})" for g in gpus)
            if gpus
            else "no GPU: TensorFlow sees none; training runs on the CPU"
        ),
        "cuda_build": bool(build.get("is_cuda_build")),
        "cuda": build.get("cuda_version"),
        "cudnn": build.get("cudnn_version"),
        "onednn": {
            "TF_ENABLE_ONEDNN_OPTS": onednn,
            "in_training": onednn != "0",
            "note": "artdet train turns oneDNN's CPU kernels on unless TF_ENABLE_ONEDNN_OPTS=0",
        },
        "mixed_precision": mixed_precision_dtype("auto", physical),
        "cpu": _cpu(),
        "memory_gib": _memory_gib(),
        "disk_free_gib": round(disk.free / 2**30, 1),
        "disk_path": str(Path(path).resolve()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "presets": presets,
    }


def report(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`collect`."""
    lines = [f"GPU            {info['gpu_summary']}"]
    for gpu in info["gpus"]:
        if "memory_total_mib" in gpu:
            lines.append(
                f"               {gpu['name']}: {gpu['memory_free_mib']} of {gpu['memory_total_mib']} MiB free, "
                f"driver {gpu['driver']}"
            )
    cuda = f"CUDA {info['cuda']}, cuDNN {info['cudnn']}" if info["cuda_build"] else "TensorFlow built without CUDA"
    lines += [
        f"CUDA           {cuda}",
        f"mixed precision auto -> {info['mixed_precision']}",
        f"oneDNN         {'on' if info['onednn']['in_training'] else 'off'} in training ({info['onednn']['note']})",
        f"CPU            {info['cpu']['model']}, {info['cpu']['cores']} cores, {' '.join(info['cpu']['flags']) or '-'}",
        f"memory         {info['memory_gib']['available']} of {info['memory_gib']['total']} GiB available",
        f"disk           {info['disk_free_gib']} GiB free in {info['disk_path']}",
        f"python         {info['python']} on {info['platform']}",
        "packages       " + ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v),
        "presets",
    ]
    for name, fit in info["presets"].items():
        lines.append(f"  {'yes' if fit['fits'] else 'no ':3}  {name:22} {fit['why']}")
    return "\n".join(lines)

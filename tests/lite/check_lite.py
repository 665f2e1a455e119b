"""The light install (`pip install .`, no TensorFlow) detects with an int8 TFLite file: `make test-lite`.

Run with the light virtualenv's Python, after tests/lite/export_model.py made the file. Prints
one line per check and a closing "N passed, N failed" line; exits 1 on any failure.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path


def main(work: Path) -> int:
    model = work / "results" / "tiny" / "tflite_int8" / "model.tflite"
    photo = sorted((work / "photos").glob("*.jpg"))[0]
    checks: list[tuple[str, bool]] = []
    checks.append(("TensorFlow is not installed", importlib.util.find_spec("tensorflow") is None))

    out = work / "lite-detections"
    run = subprocess.run(
        [sys.executable, "-m", "artdet", "detect", str(model), str(photo), "--out", str(out), "--min-score", "0"],
        capture_output=True,
        text=True,
    )
    rows = (
        [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
        if run.returncode == 0
        else []
    )
    checks.append((f"artdet detect exits 0 ({run.stderr.strip()[-300:]})", run.returncode == 0))
    checks.append(("artdet detect wrote detections and an annotated photo", bool(rows) and (out / photo.name).exists()))

    import numpy as np
    from PIL import Image

    from artdet.deploy.runtime import Detector

    detections = Detector(model)(np.asarray(Image.open(photo).convert("RGB")))
    checks.append(("Detector finds boxes with the label map's names", bool(detections)))
    checks.append(("tensorflow stays out of sys.modules", "tensorflow" not in sys.modules))

    checks.append(("artdet serve answers POST /v1/detect with the TFLite file", _serves(model, photo)))

    for name, ok in checks:
        print(f"{'PASSED' if ok else 'FAILED'}  {name}")
    failed = sum(not ok for _, ok in checks)
    print(f"lite: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _serves(model: Path, photo: Path) -> bool:
    """`artdet serve` on a free loopback port: one detection request with the photo, then stopped."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "artdet", "serve", f"lite={model}", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        request = urllib.request.Request(
            url + "/v1/detect?min_score=0", data=photo.read_bytes(), headers={"Content-Type": "image/jpeg"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = json.loads(answer.read())
        return body["model"] == "lite" and isinstance(body["detections"], list)
    except OSError:
        return False
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

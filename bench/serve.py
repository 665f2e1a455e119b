"""Requests/s and latency of `artdet serve` on loopback at 1, 4 and 16 concurrent clients.

With ``--baseline REF`` the server of an earlier commit (its ``src/`` taken with ``git archive``)
is measured too, back to back with this checkout's: for each client count the two alternate,
three rounds each, and the table gives medians and the ratio of this checkout to the baseline.

    python bench/serve.py                      # this checkout only
    python bench/serve.py --baseline d7af47a   # before/after
    python bench/serve.py --model results/ssd_mobilenet/saved_model
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx

from common import CACHE, ROOT, median, percentile, save
from inference import exported_model

CLIENTS = (1, 4, 16)
REQUESTS_PER_CLIENT = 16
ROUNDS = 3


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_src(ref: str) -> Path:
    """The ``src/`` folder of commit ``ref``, extracted once into the cache."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    out = CACHE / f"src-{commit}"
    if not (out / ".complete").exists():
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(out, filter="data")
        (out / ".complete").write_text(commit + "\n")
    return out / "src"


def payloads() -> list[bytes]:
    """16 of the benchmark's 320x240 JPEGs (the resized images of the cached dataset)."""
    import train_speed

    records = train_speed.records()[0].parent  # built once, cached
    paths = sorted(records.glob("shards/*/images/*.jpg"))[:16]
    if not paths:
        raise SystemExit(f"no resized images under {records}/shards/*/images: delete {records} and rerun")
    return [p.read_bytes() for p in paths]


class Server:
    """`artdet serve` from a given ``src/`` folder, in a subprocess on a free port."""

    def __init__(self, src: Path, model: Path):
        self.url = f"http://127.0.0.1:{_port()}"
        env = {**os.environ, "PYTHONPATH": str(src)}
        port = self.url.rsplit(":", 1)[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "artdet", "serve", str(model), "--port", port],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for _ in range(240):
            try:
                httpx.get(self.url + "/health", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    raise SystemExit(f"the server from {src} did not start") from None
                time.sleep(0.5)
        raise SystemExit(f"the server from {src} did not answer in 120 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def load(url: str, images: list[bytes], clients: int, requests: int) -> dict:
    """``requests`` POSTs of raw JPEG bodies from ``clients`` threads, one connection each."""
    local = {}

    def one(i: int) -> tuple[int, float]:
        import threading

        client = local.setdefault(threading.get_ident(), httpx.Client(timeout=300))
        start = time.perf_counter()
        response = client.post(
            url + "/v1/detect", content=images[i % len(images)], headers={"content-type": "image/jpeg"}
        )
        return response.status_code, time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    for client in local.values():
        client.close()
    latencies = [seconds for _, seconds in results]
    return {
        "clients": clients,
        "requests": requests,
        "ok": sum(status == 200 for status, _ in results),
        "server_errors": sum(status >= 500 for status, _ in results),
        "requests_per_s": requests / wall,
        "p50_ms": median(latencies) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git commit whose server is measured too, back to back")
    parser.add_argument("--model", type=Path, help="an exported model (default: the benchmark's ssd_mobilenet)")
    args = parser.parse_args()

    model = args.model or exported_model()
    images = payloads()
    sources = {"this checkout": ROOT / "src"}
    if args.baseline:
        sources = {f"baseline {args.baseline}": baseline_src(args.baseline), **sources}
    servers = {name: Server(src, model) for name, src in sources.items()}
    runs: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in CLIENTS} for name in servers}
    try:
        for server in servers.values():
            load(server.url, images, 4, 12)  # warm-up: traces the model, fills caches
        for clients in CLIENTS:
            for _ in range(ROUNDS):
                for name, server in servers.items():
                    runs[name][clients].append(load(server.url, images, clients, clients * REQUESTS_PER_CLIENT))
    finally:
        for server in servers.values():
            server.stop()

    baseline = next(iter(servers)) if args.baseline else None
    rows = []
    summary: dict[str, dict[int, dict]] = {}
    for name in servers:
        summary[name] = {}
        for clients in CLIENTS:
            rounds = runs[name][clients]
            summary[name][clients] = {
                key: round(median([r[key] for r in rounds]), 1) for key in ("requests_per_s", "p50_ms", "p95_ms")
            }
            summary[name][clients]["server_errors"] = sum(r["server_errors"] for r in rounds)
    for clients in CLIENTS:
        for name in servers:
            row = summary[name][clients]
            ratio = round(row["requests_per_s"] / summary[baseline][clients]["requests_per_s"], 2) if baseline else 1.0
            rows.append(
                [
                    clients,
                    name,
                    clients * REQUESTS_PER_CLIENT,
                    row["requests_per_s"],
                    ratio,
                    row["p50_ms"],
                    row["p95_ms"],
                    row["server_errors"],
                ]
            )
    headers = ["clients", "server", "requests", "requests/s", "x baseline", "p50 ms", "p95 ms", "5xx"]
    info = json.loads((model / "artdet_model.json").read_text()) if (model / "artdet_model.json").exists() else {}
    size = "x".join(str(v) for v in info.get("input_size", ["?"]))
    title = (
        f"artdet serve on loopback, 320x240 JPEGs as raw bodies, {info.get('experiment', 'model')} SavedModel "
        f"{size} ({model.parent.name}); medians of {ROUNDS} rounds, servers alternating"
    )
    save(
        "serve",
        ("requests/s at 16 clients", summary["this checkout"][16]["requests_per_s"], "requests/s"),
        {title: (headers, rows)},
        {"model": str(model), "baseline": args.baseline, "summary": summary, "runs": runs},
    )


if __name__ == "__main__":
    main()

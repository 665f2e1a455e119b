"""Requests/s and latency of `artdet serve` on loopback, at 1 and 8 concurrent clients."""

from __future__ import annotations

import concurrent.futures
import socket
import subprocess
import sys
import time

import httpx

from common import CACHE, median, percentile, save
from inference import exported_model


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(url: str, payloads: list[bytes], clients: int, requests: int) -> dict:
    def one(i: int) -> float:
        start = time.perf_counter()
        response = httpx.post(
            url + "/v1/detect", content=payloads[i % len(payloads)], headers={"content-type": "image/jpeg"}, timeout=120
        )
        response.raise_for_status()
        return time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": requests,
        "requests_per_s": round(requests / wall, 2),
        "p50_ms": round(median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
    }


def main() -> None:
    model = exported_model()
    port = _port()
    server = subprocess.Popen(
        [sys.executable, "-m", "artdet", "serve", str(model), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                httpx.get(url + "/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        payloads = [p.read_bytes() for p in sorted((CACHE / "records-1000-320" / "images").glob("*.jpg"))[:16]]
        load(url, payloads, 1, 5)  # warm-up
        results = [load(url, payloads, 1, 40), load(url, payloads, 8, 80)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = [[r["clients"], r["requests"], r["requests_per_s"], r["p50_ms"], r["p95_ms"]] for r in results]
    save(
        "serve",
        ("requests/s at 8 clients", results[1]["requests_per_s"], "requests/s"),
        {
            "artdet serve on loopback, 320x240 JPEGs, ssd_mobilenet 320x320": (
                ["clients", "requests", "requests/s", "p50 ms", "p95 ms"],
                rows,
            )
        },
        {"runs": results},
    )


if __name__ == "__main__":
    main()

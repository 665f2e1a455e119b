"""What one request to ``artdet serve`` may send, and how many may be at work: a light module.

The command line reads these defaults while building its parser, for every ``artdet``
command; keeping them apart from :mod:`artdet.deploy.serve` keeps FastAPI out of that path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """What one request may send, and how many requests may be at work or waiting.

    ``max_concurrency`` requests decode and run the model at once (worker threads);
    ``max_queue`` more wait for a turn with their upload read. The sum bounds the
    memory that uploads can hold; a request beyond it is answered 503 at once.
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    max_concurrency: int = 4
    max_queue: int = 32

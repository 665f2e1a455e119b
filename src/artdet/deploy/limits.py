"""What one request to ``artdet serve`` may send, and how many may be at work: a light module.

The command line reads these defaults while building its parser, for every ``artdet``
command; keeping them apart from :mod:`artdet.deploy.serve` keeps FastAPI out of that path.
The upload and image sizes come from the config schema (``serve:``), like every default.
"""

from __future__ import annotations

from dataclasses import dataclass

from artdet.defaults import default

MIB = 1024 * 1024


@dataclass
class Limits:
    """What one request may send, and how many requests may be at work or waiting.

    ``max_concurrency`` requests decode and run the model at once (worker threads);
    ``max_queue`` more wait for a turn with their upload read. The sum bounds the
    memory that uploads can hold; a request beyond it is answered 503 at once.
    """

    max_bytes: int = int(default("serve.max_upload_mb") * MIB)
    max_pixels: int = int(default("serve.max_megapixels") * 1e6)
    max_side: int = 12_000
    max_concurrency: int = 4
    max_queue: int = 32

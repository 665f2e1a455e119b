"""The story of a training run, told live: on the console and in the log.

A run on a GPU VM lasts hours, and under Snakemake its output goes to a log
file. ``artdet train --log FILE`` sends everything the process writes
(TensorFlow's messages too) to that file, and :func:`tell` writes the lines a
user follows (the plan, progress, validations, early stopping) to the log and
also to the console that Snakemake shows, prefixed with the model's name.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TextIO

_console: TextIO | None = None
_prefix = ""


def log_to(path: str | Path, prefix: str = "") -> None:
    """Redirect this process's stdout and stderr to ``path``; :func:`tell` keeps the console.

    The redirection is at the file-descriptor level, so what TensorFlow's C++
    code prints lands in the log as well.
    """
    global _console, _prefix
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.dup(2)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _console = os.fdopen(console, "w", buffering=1)
    _prefix = prefix


def tell(line: str) -> None:
    """A line of the run's story: into the log (stderr), and onto the console when the log is a file."""
    print(line, file=sys.stderr, flush=True)
    if _console is not None:
        # A console that went away (a closed terminal) ends nothing: the log still has the line.
        with contextlib.suppress(OSError):
            print(f"{_prefix}{line}", file=_console, flush=True)


class Progress:
    """An orbit train action: one line per loop with step, images/s, loss, learning rate and ETA.

    Orbit calls it after every ``steps_per_loop`` steps; on a terminal the line
    is redrawn in place as a progress bar; otherwise each loop is a line, in the
    log and (after :func:`log_to`) on the console.
    """

    def __init__(self, start_step: int, total_steps: int, steps_per_loop: int, batch_size: int):
        self.step = start_step
        self.total = total_steps
        self.per_loop = steps_per_loop
        self.batch = batch_size
        self.last = time.perf_counter()
        self.tty = sys.stderr.isatty() and _console is None

    def exclude(self, seconds: float) -> None:
        """Leave time spent outside training (validation) out of the next images/s."""
        self.last += seconds

    def __call__(self, output: dict) -> None:
        import numpy as np

        now = time.perf_counter()
        done = min(self.per_loop, self.total - self.step)
        self.step += done
        steps_per_s = done / max(now - self.last, 1e-9)
        self.last = now
        loss = float(np.asarray(output.get("total_loss", np.nan)))
        lr = float(np.asarray(output.get("learning_rate", np.nan)))
        eta = (self.total - self.step) / steps_per_s if steps_per_s else float("inf")
        line = (
            f"step {self.step}/{self.total} | {steps_per_s * self.batch:.1f} images/s | loss {loss:.4f} | "
            f"lr {lr:.2e} | ETA {int(eta // 60)}m{int(eta % 60):02d}s"
        )
        if self.tty:
            width = 24
            filled = int(width * self.step / max(self.total, 1))
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}", end="", file=sys.stderr, flush=True)
            if self.step >= self.total:
                print(file=sys.stderr)
        else:
            tell(f"progress | {line}")

"""artdet: a reproducible pipeline from LabelImg-labelled photos to an evaluated, exported detector.

The package is grouped by role, like the workflow's rules:

- :mod:`artdet.data`: checks, resizing, split, CSV, TFRecords and reports of a labelled dataset;
- :mod:`artdet.train`: the Model Garden experiment config, its schedule, training and validation;
- :mod:`artdet.evaluate`: inference on the test records, COCO metrics, figures, comparisons;
- :mod:`artdet.deploy`: SavedModel and TFLite export, the ``Detector`` runtime, ``artdet detect``
  and ``artdet serve``;
- :mod:`artdet.cli`: the ``artdet`` command line, one subcommand per rule.

``from artdet import Detector, prepare_dataset`` gives the two entry points for scripts; they
are imported on first use, so ``import artdet`` does not load TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from artdet.data.prepare import prepare_dataset
    from artdet.deploy.runtime import Detection, Detector

_LAZY = {
    "Detector": "artdet.deploy.runtime",
    "Detection": "artdet.deploy.runtime",
    "prepare_dataset": "artdet.data.prepare",
}

__all__ = ["Detection", "Detector", "__version__", "prepare_dataset"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'artdet' has no attribute {name!r}")

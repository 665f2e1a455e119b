"""``artdet.predict.Detector``, where scripts written for earlier versions import it from.

The runtime lives in :mod:`artdet.deploy.runtime`; ``from artdet import Detector`` is the short form.
"""

from artdet.deploy.runtime import Detection, Detector

__all__ = ["Detection", "Detector"]

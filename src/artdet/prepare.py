"""``artdet.prepare.prepare_dataset``, where scripts written for earlier versions import it from.

The function lives in :mod:`artdet.data.prepare`; ``from artdet import prepare_dataset`` is the short form.
"""

from artdet.data.prepare import prepare_dataset

__all__ = ["prepare_dataset"]

"""artdet: a reproducible pipeline from LabelImg-labelled photos to an evaluated, exported detector.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512
VNNI/BF16 or AMX; on other x86 CPUs (AVX2 server and desktop parts) training
the ``ssd_mobilenet`` preset runs at 12.7 instead of 7.8 images/s with them
(``bench/train_speed.py``). The setting has to be made before TensorFlow is
imported, so it lives here; ``TF_ENABLE_ONEDNN_OPTS=0`` in the environment
still turns them off.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

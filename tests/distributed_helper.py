"""Train from a pipeline in this process, optionally on N logical CPU devices, for tests/test_distribution.py.

python distributed_helper.py PIPELINE MODEL_DIR CPU_DEVICES OUT_JSON

Logical devices must be configured before TensorFlow runs anything, hence a process of its
own. After training it writes the summary and, for the first two global batches of the
training input as the trainer's strategy distributes it, a digest of every image each local
replica read.
"""

from __future__ import annotations

import hashlib
import json
import sys


def main(pipeline: str, model_dir: str, cpu_devices: int, out: str) -> None:
    import tensorflow as tf

    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    from official.core import task_factory

    from artdet.train.pipeline_config import load_params
    from artdet.train.trainer import _strategy, scale_to_replicas, train

    summary = train(pipeline, model_dir)
    params, header = load_params(pipeline)
    strategy = _strategy(header["distribution"])
    scale_to_replicas(params, header.get("schedule") or {}, strategy.num_replicas_in_sync)
    task = task_factory.get_task(params.task)
    dataset = strategy.distribute_datasets_from_function(
        lambda context: task.build_inputs(params.task.train_data, context)
    )
    batches = []
    for _, (images, _labels) in zip(range(2), dataset, strict=False):
        batches.append(
            [
                [hashlib.sha256(image.tobytes()).hexdigest() for image in local.numpy()]
                for local in strategy.experimental_local_results(images)
            ]
        )
    with open(out, "w") as handle:
        json.dump({"summary": summary, "batches": batches}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])

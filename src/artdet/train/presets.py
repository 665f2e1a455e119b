"""Model presets: a Model Garden experiment name plus the fields we change.

``ssd_mobilenet`` and ``faster_rcnn`` are named after the tutorial's models and
sized for a CPU: a MobileNetV2 backbone, a narrow FPN and head with separable
convolutions, float32 everywhere (bfloat16, Model Garden's default input
dtype, is slow on CPUs); they train from scratch. The GPU presets match
published Model Garden architectures, so their checkpoints load
(``pretrained:`` in config.yaml names one from :mod:`artdet.train.checkpoints`).
Each preset says which modules its checkpoint initialises and its reference
batch size (the learning rate scales with the batch size, see
:mod:`artdet.train.pipeline_config`). A user changes any field through
``overrides:`` in config.yaml rather than editing this file.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # One-stage: RetinaNet with a MobileNetV2 backbone (the tutorial's SSD-MobileNet).
    "ssd_mobilenet": {
        "experiment": "retinanet",
        "description": "RetinaNet, MobileNetV2 backbone, 64-filter separable FPN and head",
        "params": {
            "task": {
                "model": {
                    "min_level": 3,
                    "max_level": 6,
                    "backbone": {"type": "mobilenet", "mobilenet": {"model_id": "MobileNetV2"}},
                    "decoder": {"type": "fpn", "fpn": {"num_filters": 64, "use_separable_conv": True}},
                    "head": {"num_convs": 2, "num_filters": 64, "use_separable_conv": True},
                    "norm_activation": {"activation": "relu6", "use_sync_bn": False},
                    # Keep low-score boxes: a young model's scores sit below Model Garden's
                    # default of 0.05 and it would return nothing; callers filter by score.
                    # NMS over the top 1,000 boxes, not 5,000: on the demo the SavedModel
                    # took 44 ms per image instead of 242 ms on a CPU, with the same AP.
                    "detection_generator": {"pre_nms_score_threshold": 0.01, "pre_nms_top_k": 1000},
                },
                "losses": {"l2_weight_decay": 0.0},
            },
        },
        "optimizer": "adam",
        "learning_rate": 0.002,
        "batch_size": 8,
    },
    # Two-stage: Faster R-CNN, i.e. Model Garden's Mask R-CNN task without masks.
    "faster_rcnn": {
        "experiment": "maskrcnn_mobilenet_coco",
        "description": "Faster R-CNN (Mask R-CNN task, include_mask: false), MobileNetV2 FPN",
        "params": {
            "task": {
                "model": {
                    "include_mask": False,
                    "min_level": 3,
                    "max_level": 6,
                    "decoder": {"type": "fpn", "fpn": {"num_filters": 64, "use_separable_conv": True}},
                    "rpn_head": {"num_filters": 64},
                    "detection_head": {"num_filters": 64, "fc_dims": 256},
                    "roi_generator": {"num_proposals": 300, "test_num_proposals": 300},
                    "roi_sampler": {"num_sampled_rois": 128},
                    "norm_activation": {"use_sync_bn": False},
                },
                "losses": {"l2_weight_decay": 0.0},
            },
        },
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 4,
    },
    # GPU presets: published Model Garden architectures whose checkpoints load.
    "ssd_spinenet_mobile": {
        "experiment": "retinanet_mobile_coco",
        "description": "RetinaNet, Mobile SpineNet-49 backbone, 384x384 (Model Garden's mobile COCO model)",
        "input_size": 384,
        "pretrained": "spinenet49_mobile_coco",
        "params": {"task": {"model": {"norm_activation": {"use_sync_bn": False}}}},
        "optimizer": "sgd",
        "learning_rate": 0.08,
        "batch_size": 64,
    },
    "retinanet_resnet50": {
        "experiment": "retinanet_resnetfpn_coco",
        "description": "RetinaNet, ResNet-50-FPN, 640x640 (Model Garden's COCO model)",
        "input_size": 640,
        "pretrained": "retinanet_resnet50_coco",
        "params": {"task": {"model": {"norm_activation": {"use_sync_bn": False}}}},
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "batch_size": 16,
    },
    "faster_rcnn_resnet50": {
        "experiment": "fasterrcnn_resnetfpn_coco",
        "description": "Faster R-CNN, ResNet-50-FPN, 640x640, backbone from ImageNet",
        "input_size": 640,
        "pretrained": "resnet50_imagenet",
        "params": {"task": {"model": {"norm_activation": {"use_sync_bn": False}}}},
        "optimizer": "sgd",
        "learning_rate": 0.02,
        "batch_size": 16,
    },
}


def preset(name: str) -> dict[str, Any]:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None

"""The rendered Model Garden config is complete, valid and reflects config.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from artdet.train.pipeline_config import dotted_to_nested, load_params, render, write_pipeline


def _model(**extra):
    return {"name": "m", "preset": "ssd_mobilenet", "input_size": 320, "train_steps": 700, "batch_size": 8, **extra}


def test_ssd_mobilenet_preset_renders_the_cpu_recipe() -> None:
    cfg = render(_model(), num_classes=4, train_records=["/d/train.record"], val_records=["/d/val.record"])
    model = cfg["task"]["model"]
    assert model["num_classes"] == 5
    assert model["input_size"] == [320, 320, 3]
    assert model["backbone"]["mobilenet"]["model_id"] == "MobileNetV2"
    assert model["head"] == {**model["head"], "num_convs": 2, "num_filters": 64, "use_separable_conv": True}
    assert cfg["task"]["train_data"]["input_path"] == "/d/train.record"
    assert cfg["task"]["validation_data"]["input_path"] == "/d/val.record"
    assert cfg["task"]["train_data"]["dtype"] == "float32"
    assert cfg["trainer"]["train_steps"] == 700
    assert cfg["trainer"]["optimizer_config"]["optimizer"]["type"] == "adam"
    # Warm-up to the full rate over 100 steps, then the cosine over the other 600.
    assert cfg["trainer"]["optimizer_config"]["learning_rate"]["cosine"]["decay_steps"] == 600
    assert cfg["trainer"]["optimizer_config"]["learning_rate"]["cosine"]["offset"] == 100
    assert cfg["trainer"]["optimizer_config"]["warmup"]["linear"]["warmup_steps"] == 100
    assert cfg["trainer"]["checkpoint_interval"] % cfg["trainer"]["steps_per_loop"] == 0


def test_faster_rcnn_preset_has_no_mask_head() -> None:
    cfg = render(_model(preset="faster_rcnn"), 2, ["t"], ["v"])
    assert cfg["task"]["model"]["include_mask"] is False
    assert cfg["task"]["model"]["num_classes"] == 3


def test_overrides_by_dotted_key_and_bad_keys_are_named() -> None:
    assert dotted_to_nested({"a.b.c": 1, "a.d": 2}) == {"a": {"b": {"c": 1}, "d": 2}}
    cfg = render(_model(overrides={"task.model.head.num_convs": 3}), 1, ["t"], ["v"])
    assert cfg["task"]["model"]["head"]["num_convs"] == 3
    with pytest.raises(ValueError, match="no_such_field"):
        render(_model(overrides={"task.model.head.no_such_field": 3}), 1, ["t"], ["v"])


def test_input_size_must_suit_the_feature_pyramid() -> None:
    with pytest.raises(ValueError, match="multiple of 2\\*\\*max_level = 64"):
        render(_model(input_size=300), 1, ["t"], ["v"])


def test_written_pipeline_loads_back(tmp_path: Path) -> None:
    out = tmp_path / "m" / "pipeline.yaml"
    model = _model(preset="faster_rcnn", train_steps=12)
    length = write_pipeline(
        model, 3, ["/t.record"], ["/v.record"], out, classes=["king", "queen", "dwarf"], train_images=8
    )
    assert length.reason == "train_steps 12 (12.0 epochs of 8 images)"
    assert yaml.safe_load(out.read_text())["artdet"]["experiment"] == "maskrcnn_mobilenet_coco"
    params, header = load_params(out)
    assert header.pop("schedule") == {
        "unit": "train_steps",
        "epochs": None,
        "time_budget": None,
        "budget_seconds": None,
        "reserved_seconds": None,
        "train_images": 8,
        "steps": 12,
        "reason": "train_steps 12 (12.0 epochs of 8 images)",
        "patience": None,
        "steps_per_loop": 50,
        "warmup_steps": 100,
        "checkpoint_every": 100,
        "validate_every": None,
        "validations": None,
    }
    assert header == {
        "experiment": "maskrcnn_mobilenet_coco",
        "preset": "faster_rcnn",
        "bn_recalibration_batches": 50,
        "mixed_precision": "auto",
        "distribution": "auto",
        "pretrained": None,
        "pretrained_sha256": None,
        "classes": ["king", "queen", "dwarf"],
        "validation": {"split": "val", "images": None},
        "anchors": "Model Garden's defaults",
        "two_stage": None,
    }
    assert params.trainer.train_steps == 12
    assert params.task.model.num_classes == 4
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        write_pipeline(model, 3, ["/t.record"], ["/v.record"], out, classes=["king", "queen"])


def test_pipeline_files_without_a_schedule_still_load(tmp_path: Path) -> None:
    """A pipeline.yaml rendered before lengths had units: a fixed train_steps, no early stopping."""
    out = tmp_path / "pipeline.yaml"
    write_pipeline(_model(train_steps=12), 1, ["/t.record"], ["/v.record"], out, train_images=8)
    data = yaml.safe_load(out.read_text())
    del data["artdet"]["schedule"]
    out.write_text(yaml.safe_dump(data))
    params, header = load_params(out)
    assert header["schedule"] is None and params.trainer.train_steps == 12


def test_epochs_count_the_training_records(tmp_path: Path) -> None:
    from artdet.data.example_proto import RecordWriter

    records = []
    for i, count in enumerate((30, 27)):
        records.append(str(tmp_path / f"train-{i}.tfrecord"))
        with RecordWriter(records[-1]) as writer:
            for _ in range(count):
                writer.write(b"example")
    out = tmp_path / "pipeline.yaml"
    length = write_pipeline(
        _model(train_steps=None, epochs=3, validations=2, steps_per_loop=10), 1, records, ["/v.record"], out
    )
    assert length.reason == "3 epochs x 57 images / batch 8 -> 22 steps"
    params, header = load_params(out)
    assert params.trainer.train_steps == 22 and header["schedule"]["train_images"] == 57
    assert params.trainer.optimizer_config.warmup.linear.warmup_steps == 11  # at most half the run
    assert params.trainer.validation_interval == 20  # two validations: after the loop of step 20, at 22
    with pytest.raises(ValueError, match="model 'm': set either epochs \\(3\\) or train_steps \\(5\\)"):
        render(_model(train_steps=5, epochs=3), 1, ["t"], ["v"], train_images=57)


def test_time_budget_renders_the_probe_and_records_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    model = _model(time_budget="1.5h", steps_per_loop=20, patience=2)
    length = write_pipeline(model, 1, ["/t.record"], ["/v.record"], out, train_images=100)
    assert length.unit == "time_budget" and length.steps == 60
    params, header = load_params(out)
    assert header["schedule"]["budget_seconds"] == 5400 and header["schedule"]["time_budget"] == "1.5h"
    assert header["schedule"]["patience"] == 2
    assert params.trainer.train_steps == 60
    assert "`artdet train` plans the rest" in out.read_text()


def test_planned_learning_rate_is_the_rendered_schedule() -> None:
    """The schedule a time budget trains with (lengths in variables) matches Model Garden's from the config."""
    from official.modeling.optimization import optimizer_factory
    from official.modeling.optimization.configs import optimization_config

    from artdet.train.trainer import planned_learning_rate

    for total, warmup in ((600, 100), (37, 18), (50, 0)):
        cfg = render(_model(train_steps=total, warmup_steps=warmup), 1, ["t"], ["v"])
        factory = optimizer_factory.OptimizerFactory(
            optimization_config.OptimizationConfig(cfg["trainer"]["optimizer_config"])
        )
        reference = factory.build_learning_rate()
        planned = planned_learning_rate(0.002, 7, 10**9)
        planned.set_length(warmup, total)
        steps = (0, 1, warmup // 2, max(warmup - 1, 0), warmup, warmup + 1, total // 2, total - 1, total, total + 5)
        for step in steps:
            assert float(planned(step)) == pytest.approx(float(reference(step)), abs=1e-7), (total, warmup, step)
        assert float(planned(total)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("validate_every", "interval"), [(None, 100), (250, 240), (5, 20), (0, 0)])
def test_validation_interval_is_a_multiple_of_the_train_loop(validate_every, interval) -> None:
    """Validation runs after a train loop of steps_per_loop steps; 0 means only after the last step."""
    extra = {} if validate_every is None else {"validate_every": validate_every}
    cfg = render(_model(steps_per_loop=20, checkpoint_every=100, train_steps=600, **extra), 1, ["t"], ["v"])
    assert cfg["trainer"]["validation_interval"] == interval


@pytest.mark.parametrize(
    ("preset", "experiment", "size", "modules"),
    [
        ("ssd_spinenet_mobile", "retinanet_mobile_coco", 384, ["backbone"]),
        ("retinanet_resnet50", "retinanet_resnetfpn_coco", 640, ["backbone", "decoder"]),
        ("faster_rcnn_resnet50", "fasterrcnn_resnetfpn_coco", 640, ["backbone"]),
    ],
)
def test_gpu_presets_match_the_published_architectures(preset, experiment, size, modules) -> None:
    from artdet.train.checkpoints import REGISTRY
    from artdet.train.presets import PRESETS

    spec = PRESETS[preset]
    assert spec["experiment"] == experiment and REGISTRY[spec["pretrained"]]["modules"] == modules
    init = {"name": spec["pretrained"], "prefix": "/cache/ckpt-1", "modules": modules, "sha256": "0" * 64}
    cfg = render({"name": "g", "preset": preset, "train_steps": 100}, 3, ["t"], ["v"], init)
    assert cfg["task"]["model"]["input_size"] == [size, size, 3]
    assert cfg["task"]["init_checkpoint"] == "/cache/ckpt-1"
    assert cfg["task"]["init_checkpoint_modules"] == modules
    assert cfg["task"]["model"]["num_classes"] == 4
    assert cfg["task"]["train_data"]["global_batch_size"] == spec["batch_size"]


def test_learning_rate_scales_with_the_batch_unless_set() -> None:
    def lr(**model):
        cfg = render({"name": "m", "preset": "ssd_mobilenet", "train_steps": 100, **model}, 1, ["t"], ["v"])
        return cfg["trainer"]["optimizer_config"]["learning_rate"]["cosine"]["initial_learning_rate"]

    assert lr() == pytest.approx(0.002)  # the preset's batch of 8
    assert lr(batch_size=4) == pytest.approx(0.001)
    assert lr(batch_size=32) == pytest.approx(0.008)
    assert lr(batch_size=32, learning_rate=0.003) == pytest.approx(0.003)


def test_local_init_checkpoint_wins_over_the_registry() -> None:
    cfg = render(_model(init_checkpoint="/mine/ckpt-5", init_checkpoint_modules=["backbone"]), 1, ["t"], ["v"])
    assert cfg["task"]["init_checkpoint"] == "/mine/ckpt-5" and cfg["task"]["init_checkpoint_modules"] == ["backbone"]
    assert render(_model(), 1, ["t"], ["v"])["task"]["init_checkpoint"] is None


def test_pipeline_config_validates_on_the_val_records_and_never_reads_test(demo_dir: Path, tmp_path: Path) -> None:
    """`artdet pipeline-config --val` renders validation_data from the val records; test stays for evaluate."""
    from artdet.cli import main
    from artdet.data.example_proto import count_records
    from artdet.data.prepare import prepare_dataset

    data = tmp_path / "data"
    counts = prepare_dataset(demo_dir, data, max_side=128, shards=2)
    records = {side: sorted(str(p) for p in (data / "records").glob(f"{side}-*.tfrecord")) for side in counts}
    assert counts["val"] > 0 and count_records(records["val"]) == counts["val"]
    model = '{"name": "m", "preset": "ssd_mobilenet", "input_size": 128, "train_steps": 10}'
    out = tmp_path / "pipeline.yaml"
    args = ["pipeline-config", str(out), "--model-json", model, "--label-map", str(data / "label_map.pbtxt")]
    assert main([*args, "--train", *records["train"], "--val", *records["val"]]) == 0
    rendered = yaml.safe_load(out.read_text())
    assert rendered["task"]["validation_data"]["input_path"].split(",") == records["val"]
    assert rendered["task"]["train_data"]["input_path"].split(",") == records["train"]
    assert rendered["artdet"]["validation"] == {"split": "val", "images": counts["val"]}
    assert records["test"] and not any(path in out.read_text() for path in records["test"])

    # An empty val split (val_fraction 0): no validation data at all, not the test records.
    empty = prepare_dataset(demo_dir, tmp_path / "two_way", max_side=128, val_fraction=0)
    assert empty["val"] == 0
    val = [str(tmp_path / "two_way" / "val.record")]
    assert main([*args, "--train", *records["train"], "--val", *val]) == 0
    rendered = yaml.safe_load(out.read_text())
    assert rendered["task"]["validation_data"]["input_path"] == ""
    assert rendered["artdet"]["validation"] == {"split": "val", "images": 0}
    params, _ = load_params(out)
    assert params.task.validation_data.input_path == ""


def test_augment_settings_reach_the_parser_and_match_the_schema() -> None:
    import yaml

    from artdet.defaults import SCHEMA_PATH
    from artdet.train.pipeline_config import AUGMENT_DEFAULTS, parser_fields

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    augment = schema["properties"]["models"]["additionalProperties"]["properties"]["augment"]["properties"]
    assert {key: augment[key]["default"] for key in AUGMENT_DEFAULTS} == AUGMENT_DEFAULTS
    assert parser_fields(None) == {"aug_rand_hflip": True, "aug_scale_min": 0.8, "aug_scale_max": 1.2}
    fields = parser_fields({"hflip": False, "scale": [0.5, 1.5], "colour": 4})
    assert (fields["aug_rand_hflip"], fields["aug_scale_min"], fields["aug_scale_max"]) == (False, 0.5, 1.5)
    assert fields["aug_type"]["randaug"]["magnitude"] == 4.0
    assert "Brightness" not in fields["aug_type"]["randaug"]["exclude_ops"]
    assert "Rotate" in fields["aug_type"]["randaug"]["exclude_ops"]
    # Model Garden accepts the rendered fields (its config classes validate them).
    cfg = render(_model(augment={"hflip": False, "colour": 5}), 1, ["t"], ["v"])
    parser = cfg["task"]["train_data"]["parser"]
    assert parser["aug_rand_hflip"] is False and parser["aug_type"]["randaug"]["num_layers"] == 1


def test_anchors_are_fitted_only_to_boxes_the_defaults_do_not_cover() -> None:
    from artdet.train.pipeline_config import fit_anchors

    def stats(p5: float, p95: float, ratios: tuple[float, float, float] = (0.8, 1.0, 1.3)) -> dict:
        # 640x480 images; relative size = sqrt(box area / image area)
        side = (640 * 480) ** 0.5
        return {
            "image_width_px": {"median": 640},
            "image_height_px": {"median": 480},
            "box_relative_size": {"p5": p5 / side, "p95": p95 / side},
            "box_aspect_ratio": dict(zip(("p5", "median", "p95"), ratios, strict=True)),
        }

    # Box sides below are in pixels of the 640-wide image; at input 320 they halve.
    kept = fit_anchors(stats(186, 530), 320, 3, 6)  # raccoon-like: 93-265 px at 320
    assert (kept["anchor_size"], kept["aspect_ratios"]) == (4.0, [0.5, 1.0, 2.0]), kept
    small = fit_anchors(stats(42, 166), 320, 3, 6)  # BCCD-like: 21-83 px, platelets below 32 px
    # The smallest anchor comes down to the small boxes (20 px), no further: every halving of
    # anchor_size would send every box one feature level coarser.
    assert small["anchor_size"] == 2.5 and "anchor_size 4 -> 2.5 (20-254 px)" in small["reason"], small
    assert small["aspect_ratios"] == [0.5, 1.0, 2.0]
    assert "input_size" not in small["reason"]
    assert fit_anchors(stats(44, 86), 320, 3, 6)["anchor_size"] == 2.5  # chess-like: 22-43 px
    assert fit_anchors(stats(46, 86), 320, 3, 6)["anchor_size"] == 4.0  # 23 px: within sqrt 2 of 32
    tiny = fit_anchors(stats(16, 166), 320, 3, 6)  # 8 px at 320: a larger input is suggested
    assert tiny["anchor_size"] == 1.0 and "input_size 512 would give them 12 px" in tiny["reason"], tiny
    # Boxes larger than the largest anchor (a 1280 px input, 580-1100 px boxes) grow them as far as needed.
    large = fit_anchors(stats(290, 550), 1280, 3, 6)
    assert large["anchor_size"] == 11.0 and "95th-percentile" in large["reason"], large
    thin = fit_anchors(stats(186, 530, (0.2, 0.3, 0.45)), 320, 3, 6)  # pens lying flat
    assert thin["aspect_ratios"] == [0.2, 0.3, 0.45] and thin["anchor_size"] == 4.0


def test_anchors_fit_reaches_the_config_and_needs_the_statistics() -> None:
    side = (640 * 480) ** 0.5
    stats = {
        "image_width_px": {"median": 640},
        "image_height_px": {"median": 480},
        "box_relative_size": {"p5": 42 / side, "p95": 166 / side},
        "box_aspect_ratio": {"p5": 0.8, "median": 1.0, "p95": 1.3},
    }
    notes: dict = {}
    cfg = render(_model(anchors="fit"), 3, ["t"], ["v"], box_stats=stats, notes=notes)
    assert cfg["task"]["model"]["anchor"]["anchor_size"] == 2.5 and "anchor_size" in notes["anchors"]
    cfg = render(
        _model(anchors="fit", overrides={"task.model.anchor.anchor_size": 3}), 3, ["t"], ["v"], box_stats=stats
    )
    assert cfg["task"]["model"]["anchor"]["anchor_size"] == 3, "a user's override wins"
    assert render(_model(), 3, ["t"], ["v"])["task"]["model"]["anchor"]["anchor_size"] == 4.0
    with pytest.raises(ValueError, match="anchors: fit needs the dataset statistics"):
        render(_model(anchors="fit"), 3, ["t"], ["v"])


def test_anchors_are_fitted_to_the_train_boxes_only() -> None:
    """A test box changes stats.json but not the anchors: changing only test boxes leaves pipeline.yaml as it was."""
    from artdet.data.dataset import Sample
    from artdet.data.stats import compute_stats

    def sample(name: str, side: int) -> Sample:
        box = {"name": "cell", "xmin": 10, "ymin": 10, "xmax": 10 + side, "ymax": 10 + side}
        return Sample(name, None, 640, 480, [box])

    train = [(sample(f"t{i}.jpg", 40 + i), "train", Path(".")) for i in range(10)]
    small_test = compute_stats([*train, (sample("x.jpg", 12), "test", Path("."))], ["cell"])
    large_test = compute_stats([*train, (sample("x.jpg", 400), "test", Path("."))], ["cell"])
    assert small_test["box_relative_size"] != large_test["box_relative_size"]  # stats.json describes every split
    renders = [
        yaml.safe_dump(render(_model(anchors="fit"), 1, ["t"], ["v"], box_stats=stats))
        for stats in (small_test, large_test)
    ]
    assert renders[0] == renders[1]
    moved = compute_stats([*train[1:], (sample("t0.jpg", 12), "train", Path("."))], ["cell"])
    assert yaml.safe_dump(render(_model(anchors="fit"), 1, ["t"], ["v"], box_stats=moved)) != renders[0]


def test_a_two_stage_detector_renders_one_class_and_plans_within_what_the_classifier_left(tmp_path: Path) -> None:
    write_pipeline(
        _model(time_budget="10m"),
        3,
        ["t"],
        ["v"],
        tmp_path / "pipeline.yaml",
        classes=["jack", "queen", "king"],
        train_images=40,
        class_agnostic=True,
        reserved_seconds=90.0,
    )
    rendered = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    assert rendered["task"]["model"]["num_classes"] == 2
    assert rendered["task"]["train_data"]["decoder"]["type"] == "label_map_decoder"
    header = rendered["artdet"]
    assert header["classes"] == ["object"] and header["two_stage"]["classes"] == ["jack", "queen", "king"]
    assert (tmp_path / "class_agnostic.csv").read_text().splitlines() == ["1,jack", "1,queen", "1,king"]
    assert header["schedule"]["budget_seconds"] == 600 - 90 and header["schedule"]["reserved_seconds"] == 90

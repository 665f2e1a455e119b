"""End-to-end runs of the real Snakemake workflow in a temporary folder.

Tiny images and a few training steps, but every stage is real: resize, split,
CSV, TFRecord, Model Garden training, SavedModel export and pycocotools.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import LEARNING_CONFIG
from workflow_helpers import planned_jobs, snakemake


@pytest.mark.slow
def test_workflow_builds_every_artifact(workflow_run: Path) -> None:
    from artdet.data.label_map import read_label_map
    from artdet.data.labels_csv import read_labels
    from artdet.data.split import SIDES, read_split
    from artdet.train.curves import read_scalars

    results = workflow_run / "results"
    assert read_label_map(results / "data" / "label_map.pbtxt") == {
        1: "abstract",
        2: "landscape",
        3: "nocturne",
        4: "portrait",
    }
    split = read_split(results / "data" / "split.csv")
    assert len(split) == 48
    assert {row["split"] for row in split} == set(SIDES)
    test_images = [row for row in split if row["split"] == "test"]
    per_side = {side: sum(row["split"] == side for row in split) for side in SIDES}
    evaluation = results / "tiny" / "evaluation" / "saved_model"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["num_images"] == len(test_images) > 0
    for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100"):
        assert -1.0 <= metrics[key] <= 1.0
    assert metrics["AP50"] > 0.5, "the tiny model should find most demo paintings"
    assert set(metrics["per_class"]) == {"abstract", "landscape", "nocturne", "portrait"}
    # The confusion matrix accounts for every labelled test box (matched or missed).
    counts = metrics["confusion_matrix"]["counts"]
    assert sum(sum(row) for row in counts[1:]) == metrics["num_boxes"]
    assert metrics["latency_ms"]["median"] > 0 and metrics["size_mb"] > 1
    for name in ("confusion_matrix.png", "precision_recall.png"):
        assert (evaluation / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("worst_images.jpg", "sample_detections.jpg"):
        assert (evaluation / name).read_bytes()[:2] == b"\xff\xd8"
    # The int8 TFLite file is scored against the SavedModel on the same test images (test_detect.py
    # checks over all 48 photos that it finds the SavedModel's best guess on every box and most of
    # its second guesses, and test_exports.py that a lossy export is flagged).
    int8 = json.loads((results / "tiny" / "evaluation" / "tflite_int8" / "metrics.json").read_text())
    versus = int8["versus_reference"]
    assert versus["found"]["reference_detections"] >= 5
    assert versus["found"]["share"] >= 0.8, versus
    for name in ("AP", "AP50", "AR100"):
        assert versus["reference_metrics"][name] == metrics[name]
        assert versus["difference"][name] == round(int8[name] - metrics[name], 4)
    assert int8["size_mb"] < metrics["size_mb"] / 2
    comparison = (results / "comparison.csv").read_text().splitlines()
    assert comparison[0].startswith("model,format,AP,AP50") and len(comparison) == 3
    summary = json.loads((results / "tiny" / "train" / "train_summary.json").read_text())
    steps = LEARNING_CONFIG["models"]["tiny"]["train_steps"]
    assert summary["checkpoint"] == f"ckpt-{steps}"
    losses = read_scalars(results / "tiny" / "train" / "train")["total_loss"]
    assert [step for step, _ in losses] == list(range(50, steps + 1, 50))
    assert losses[-1][1] < losses[0][1], "training did not lower the loss"
    assert (results / "tiny" / "training_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (results / "tiny" / "saved_model" / "saved_model.pb").exists()
    assert (results / "tiny" / "saved_model" / "label_map.pbtxt").exists()
    for log in (
        "data/00000-of-00003/resize.log",
        "data/00002-of-00003/split.log",
        "tiny/train.log",
        "tiny/export.log",
        "tiny/evaluate_saved_model.log",
    ):
        assert (results / "logs" / log).stat().st_size > 0
    report = json.loads((results / "data" / "validation_report.json").read_text())
    assert report["totals"]["images_written"] == 48 and report["accounted"]
    assert {side: report["totals"][f"{side}_images"] for side in SIDES} == per_side
    stats = json.loads((results / "data" / "stats" / "stats.json").read_text())
    assert stats["images"] == {"total": 48, **per_side}
    assert stats["images"]["test"] == len(test_images)
    records = sorted(p.name for p in (results / "data" / "records").iterdir())
    assert records == [f"{s}-0000{i}-of-00003.tfrecord" for s in sorted(SIDES) for i in range(3)]
    # The merged tables hold every labelled box once, each on its image's side.
    labels = {side: read_labels(results / "data" / f"{side}_labels.csv") for side in SIDES}
    assert sum(len(frame) for frame in labels.values()) == report["totals"]["boxes_written"]
    sides = {row["filename"]: row["split"] for row in split}
    assert all(sides[name] == side for side, frame in labels.items() for name in frame["filename"])


@pytest.mark.slow
def test_exported_model_runs_on_an_image(workflow_run: Path) -> None:
    import numpy as np

    from artdet.deploy.runtime import Detector

    detector = Detector(workflow_run / "results" / "tiny" / "saved_model")
    image = np.zeros((90, 160, 3), np.uint8)
    for det in detector(image):
        x0, y0, x1, y1 = det.box
        assert 0 <= x0 <= x1 <= 160 and 0 <= y0 <= y1 <= 90
        assert det.class_name in detector.labels.values()


@pytest.mark.slow
def test_rerun_plans_only_what_changed(workflow_run: Path, venv_env: dict, tmp_path: Path) -> None:
    from artdet.data.split import read_split

    assert planned_jobs(workflow_run, venv_env) == {}

    # A copy, so the other tests keep a finished run.
    work = tmp_path / "copy"
    shutil.copytree(workflow_run, work, symlinks=True)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["models"]["tiny"]["train_steps"] += 10
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    # Everything from the training config on: the jobs of a changed model.
    model_jobs = {
        "pipeline_config": 1,
        "train": 1,
        "export": 1,
        "export_tflite": 1,
        "evaluate": 2,
        "compare": 1,
        "plot_training": 1,
        "all": 1,
    }
    assert planned_jobs(work, venv_env) == model_jobs

    config["models"]["tiny"]["train_steps"] -= 10
    # Exporting the best checkpoint instead re-exports and re-evaluates, without retraining.
    config["models"]["tiny"]["export_checkpoint"] = "best"
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    assert planned_jobs(work, venv_env) == {
        "export": 1,
        "export_tflite": 1,
        "evaluate": 2,
        "compare": 1,
        "all": 1,
    }

    del config["models"]["tiny"]["export_checkpoint"]
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    before = {row["filename"]: row["split"] for row in read_split(work / "results" / "data" / "split.csv")}
    from artdet.data.demo import generate

    generate(tmp_path / "more", count=1, seed=99)
    for suffix in (".jpg", ".xml"):
        shutil.copy(tmp_path / "more" / f"gallery_00000{suffix}", work / "photos" / f"extra{suffix}")
    # One shard reruns its five stages; the label map (same classes) does not.
    assert planned_jobs(work, venv_env) == {
        "validate": 1,
        "resize": 1,
        "split": 1,
        "labels_csv": 1,
        "tfrecord": 1,
        "data_report": 1,
        "merge_csv": 1,
        "stats": 1,
        **model_jobs,
    }
    # Existing images keep their side of the split.
    snakemake(work, venv_env, "results/data/split.csv")
    after = {row["filename"]: row["split"] for row in read_split(work / "results" / "data" / "split.csv")}
    assert set(after) == set(before) | {"extra.jpg"}
    assert {name: after[name] for name in before} == before


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"modles": {}}, "modles"),
        ({"split": {"test_fraction": 1.5, "seed": 0}}, "1.5"),
        (
            {"split": {"test_fraction": 0.5, "val_fraction": 0.5, "seed": 0}},
            "test_fraction (0.5) + val_fraction (0.5) must be below 1",
        ),
        (
            {
                "split": {"test_fraction": 0.2, "val_fraction": 0, "seed": 0},
                "models": {"tiny": {**LEARNING_CONFIG["models"]["tiny"], "export_checkpoint": "best"}},
            },
            "but split: val_fraction is 0; set split: val_fraction",
        ),
        ({"train_models": ["nope"]}, "nope"),
        ({"models": {"tiny": {"preset": "yolo", "train_steps": 1}}}, "yolo"),
        ({"models": {"tiny": {"preset": "ssd_mobilenet", "train_step": 1}}}, "train_step"),
        (
            {"models": {"tiny": {"preset": "ssd_mobilenet", "epochs": 2, "train_steps": 5}}},
            "model 'tiny': set either epochs (2) or train_steps (5), not both",
        ),
        ({"models": {"tiny": {"preset": "ssd_mobilenet"}}}, "model 'tiny': set its length with epochs"),
    ],
)
def test_bad_config_stops_before_any_work(tmp_path: Path, venv_env: dict, change: dict, named: str) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**LEARNING_CONFIG, **change}))
    result = snakemake(tmp_path, venv_env, check=False)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_missing_dataset_folder_is_named(tmp_path: Path, venv_env: dict) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**LEARNING_CONFIG, "dataset": "nowhere"}))
    result = snakemake(tmp_path, venv_env, check=False)
    assert result.returncode != 0
    assert "dataset folder nowhere does not exist" in result.stdout + result.stderr


def test_strict_run_stops_at_validation_naming_the_file(tmp_path: Path, venv_env: dict) -> None:
    from artdet.data.demo import generate

    generate(tmp_path / "photos", count=4, seed=1)
    xml = tmp_path / "photos" / "gallery_00001.xml"
    text = xml.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    xml.write_text(text[:start] + "9999" + text[text.index("</xmax>") :])
    config = {**LEARNING_CONFIG, "strict": True, "records": {"shards": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, venv_env, "results/data/validation_report.json", check=False)
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "data" / "00000-of-00001" / "validate.log").read_text()
    assert "strict: 1 warning(s)" in log and "gallery_00001.xml object 0: box" in log and "clipped" in log
    assert not (tmp_path / "results" / "data" / "shards" / "00000-of-00001" / "validated.json").exists()

    config["strict"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, venv_env, "results/data/validation_report.json")
    report = json.loads((tmp_path / "results" / "data" / "validation_report.json").read_text())
    assert [row["file"] for row in report["issues"]["box_clipped"]] == ["gallery_00001.xml"]


def test_a_failed_stage_shows_our_message_on_the_console(tmp_path: Path, venv_env: dict) -> None:
    """The console, not only results/logs/, says which file is wrong and what to do (profiles/default)."""
    from artdet.data.demo import generate

    generate(tmp_path / "photos", count=4, seed=1)
    (tmp_path / "photos" / "gallery_00002.jpg").unlink()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**LEARNING_CONFIG, "records": {"shards": 1}}))
    result = snakemake(tmp_path, venv_env, "results/data/validation_report.json", check=False)
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert "annotation without a matching image (add the image or delete the XML)" in console, console[-3000:]
    assert "gallery_00002.xml" in console


def test_training_progress_is_on_the_console(workflow_run: Path) -> None:
    """Training's story reaches Snakemake's console live, with the model's name, and stays in the log."""
    console = (workflow_run / "snakemake_console.txt").read_text()
    progress = [line for line in console.splitlines() if line.startswith("tiny | progress | step ")]
    assert progress, console[-3000:]
    assert "tiny | progress | step 300/300" in console
    assert any(line.startswith("tiny | validation (val split) | step ") for line in console.splitlines())
    log = (workflow_run / "results" / "logs" / "tiny" / "train.log").read_text()
    assert "progress | step 300/300" in log and "tiny | progress" not in log


@pytest.mark.slow
def test_report_opens_in_chromium_and_shows_the_plots(workflow_run: Path, venv_env: dict, tmp_path: Path) -> None:
    """`snakemake --report` gives one self-contained page; each category's plot renders in it."""
    from playwright.sync_api import sync_playwright

    from test_web import CHROMIUM

    snakemake(workflow_run, venv_env, "--report", "results/report.html")
    report = workflow_run / "results" / "report.html"
    assert report.stat().st_size > 200_000  # the images are inside the page
    shown = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for category, name in [
            ("Comparison", "results/comparison.png"),
            ("Data", "results/data/stats/contact_sheet.jpg"),
            ("Data", "results/data/validation_report.html"),
            ("Training", "results/tiny/training_loss.png"),
            ("Evaluation", "results/tiny/evaluation/saved_model/confusion_matrix.png"),
            ("Evaluation", "results/tiny/evaluation/saved_model/metrics.html"),
        ]:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(report.as_uri())
            page.get_by_text(category, exact=True).click()
            if category == "Evaluation":  # one subcategory per model and format
                page.get_by_text("tiny saved_model", exact=True).click()
            page.locator("tr", has_text=name).locator("a[iconname=eye]").click()
            if name.endswith(".html"):
                frame = page.frame_locator("iframe").first
                shown[name] = frame.locator("h1").inner_text(timeout=60_000)
            else:
                # Raster images are data URLs in the page; the icons are SVG.
                widths = (
                    "Array.from(document.images).filter(i => i.src.startsWith('data:image/')"
                    " && !i.src.startsWith('data:image/svg')).map(i => i.naturalWidth)"
                )
                page.wait_for_function(f"Math.max(0, ...{widths}) > 300", timeout=60_000)
                shown[name] = page.evaluate(f"Math.max(0, ...{widths})")
            page.screenshot(path=str(tmp_path / f"{Path(name).stem}.png"))
            page.close()
        browser.close()
    assert shown["results/data/validation_report.html"] == "Dataset validation report"
    assert shown["results/tiny/evaluation/saved_model/metrics.html"].endswith("saved_model")
    assert all(width > 300 for key, width in shown.items() if not key.endswith(".html")), shown


def test_training_reads_the_val_records_and_never_the_test_records(tmp_path: Path, venv_env: dict) -> None:
    """The planned jobs: the training config and training take val; only evaluation takes test."""
    from artdet.data.demo import generate

    generate(tmp_path / "photos", count=4, seed=1)
    config = {**LEARNING_CONFIG, "records": {"shards": 3, "unsharded": True}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, venv_env, "-n")
    text = result.stdout + result.stderr

    def jobs(rule: str) -> list[str]:
        """The dry run's description of each job of ``rule`` (up to the next job's timestamp or rule)."""
        return re.findall(rf"^(?:local)?rule {rule}:\n(.*?)(?=^\[|^(?:local)?rule |\Z)", text, re.M | re.S)

    def inputs(rule: str) -> list[list[str]]:
        return [re.search(r"input: (.*)", job).group(1).split(", ") for job in jobs(rule)]

    val = [f"results/data/records/val-0000{i}-of-00003.tfrecord" for i in range(3)]
    for rule in ("pipeline_config", "train"):
        (files,) = inputs(rule)
        assert set(val) <= set(files), rule
        assert not [f for f in files if "test" in Path(f).name], rule
    readers = {
        rule
        for rule in ("pipeline_config", "train", "export", "export_tflite", "evaluate")
        for files in inputs(rule)
        if any(Path(f).name.startswith("test-") for f in files)
    }
    assert readers == {"evaluate"}
    # Every shard writes a val CSV and TFRecord; unsharded: true also joins them into val.record.
    for rule, pattern in (("labels_csv", "val_labels.csv"), ("tfrecord", "val-"), ("merge_records", "val.record")):
        assert any(pattern in job for job in jobs(rule)), rule
    assert planned_jobs(tmp_path, venv_env)["merge_records"] == 3


def test_gpu_config_plans_the_checkpoint_fetch_and_a_gpu_for_training(tmp_path: Path, venv_env: dict) -> None:
    from artdet.data.demo import generate

    generate(tmp_path / "photos", count=4, seed=1)
    gpu_model = {"preset": "retinanet_resnet50", "train_steps": 1000, "batch_size": 8, "classifier": "off"}
    config = {**LEARNING_CONFIG, "train_models": ["gpu"], "models": {"gpu": gpu_model}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, venv_env, "-n")
    text = result.stdout + result.stderr
    train_job = text[text.index("rule train:") :].split("\n\n")[0]
    assert "gpu=1" in train_job
    assert "rule fetch_checkpoint:" in text and "results/checkpoints/retinanet_resnet50_coco/checkpoint.json" in text
    # Faster R-CNN gets no TFLite export; the SavedModel is still evaluated.
    config["models"]["gpu"]["preset"] = "faster_rcnn_resnet50"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tmp_path, venv_env)
    assert "export_tflite" not in jobs and jobs["evaluate"] == 1 and jobs["fetch_checkpoint"] == 1

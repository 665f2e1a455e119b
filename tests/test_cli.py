"""The command line: stages by hand, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artdet.cli import main
from artdet.data.voc import Annotation, Box, write_voc


def test_stages_chain_by_hand(demo_dir: Path, tmp_path: Path) -> None:
    """The workflow's per-shard commands, run by hand on one shard of two."""
    shard = tmp_path / "shard"
    validated, images, manifest = shard / "validated.json", shard / "images", shard / "manifest.json"
    shard.mkdir()
    assert main(["validate", str(demo_dir), "--shard", "1", "--shards", "2", "--out", str(validated)]) == 0
    assert main(["resize", str(demo_dir), str(validated), str(images), str(manifest), "--max-side", "200"]) == 0
    assert main(["split", str(manifest), str(shard / "split.csv"), "--test-fraction", "0.3"]) == 0
    assert main(["csv", str(manifest), str(shard / "split.csv"), "--train", str(shard / "train.csv")]) == 0
    classes = ["portrait", "landscape", "abstract", "nocturne"]
    assert main(["label-map", str(tmp_path / "map.pbtxt"), "--classes", *classes]) == 0
    assert (tmp_path / "map.pbtxt").read_text().startswith("item {\n  id: 1\n  name: 'portrait'")
    record = tmp_path / "train-00001-of-00002.tfrecord"
    assert (
        main(
            [
                "tfrecord",
                str(manifest),
                str(shard / "split.csv"),
                str(images),
                str(tmp_path / "map.pbtxt"),
                "--train",
                str(record),
            ]
        )
        == 0
    )
    assert main(["data-report", str(shard), "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")]) == 0
    entries = json.loads(manifest.read_text())
    assert 5 < len(entries) < 35 and all(max(e["width"], e["height"]) == 200 for e in entries)
    assert f"| images | {len(entries)} | {len(entries)} | 0 |" in (tmp_path / "r.md").read_text()
    assert (
        main(["stats", str(shard), "--label-map", str(tmp_path / "map.pbtxt"), "--out-dir", str(tmp_path / "st")]) == 0
    )
    stats = json.loads((tmp_path / "st" / "stats.json").read_text())
    assert stats["images"]["total"] == len(entries)
    assert stats["boxes"] == sum(len(e["objects"]) for e in entries)


def test_validate_alone_prints_the_report(demo_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["validate", str(demo_dir), "--report", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "# Dataset validation report" in out and "| images | 40 | 40 | 0 |" in out
    assert json.loads((tmp_path / "report.json").read_text())["totals"]["images_found"] == 40
    assert (tmp_path / "report.md").read_text().strip() == out.strip()


def test_unknown_label_is_reported_with_exit_2(demo_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["validate", str(demo_dir), "--out", str(tmp_path / "v.json"), "--classes", "portrait"]) == 2
    err = capsys.readouterr().err
    assert "artdet validate: error: labels not in config.yaml" in err and "'abstract' in gallery_" in err


def test_broken_annotation_names_the_file(tmp_path: Path, capsys) -> None:
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (50, 40)).save(data / "a.jpg")
    write_voc(Annotation("a.jpg", 50, 40, boxes=[Box("x", 1, 1, 20, 20)]), data / "a.xml")
    (data / "a.xml").write_text((data / "a.xml").read_text().replace("<xmin>1</xmin>", "<xmin>left</xmin>"))
    assert main(["validate", str(data), "--out", str(tmp_path / "v.json")]) == 2
    assert f"{data / 'a.xml'}: object 0 ('x') has a coordinate that is not a number" in capsys.readouterr().err


def test_demo_data_reads_count_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("demo:\n  count: 3\n  seed: 2\n")
    assert main(["demo-data", str(tmp_path / "d"), "--config", str(tmp_path / "config.yaml")]) == 0
    assert len(list((tmp_path / "d").glob("*.jpg"))) == 3


def test_unknown_command_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    assert info.value.code == 2


def test_summary_lists_every_evaluated_form(tmp_path: Path) -> None:
    from artdet.evaluate.summary import summarize

    (tmp_path / "config.yaml").write_text("dataset: photos\ntrain_models: [ssd]\n")
    results = tmp_path / "results"
    for form, ap50 in (("saved_model", 0.91), ("tflite_float32", 0.9), ("tflite_int8", 0.8)):
        (results / "ssd" / "evaluation" / form).mkdir(parents=True)
        metrics = {"AP": 0.7, "AP50": ap50, "latency_ms": {"median": 12.0}, "size_mb": 3.0}
        if form.startswith("tflite"):
            lossy = ap50 < 0.89
            metrics["versus_reference"] = {
                "found": {"share": 0.97},
                "warning": "loses 0.110 AP50 against the SavedModel (tolerance 0.02)" if lossy else None,
            }
        (results / "ssd" / "evaluation" / form / "metrics.json").write_text(json.dumps(metrics))
    (results / "ssd" / "train").mkdir()
    train = {"train_steps": 600, "seconds": 450.0, "device": "cpu", "best": {"AP50": 0.93, "step": 400}}
    (results / "ssd" / "train" / "train_summary.json").write_text(json.dumps(train))
    text = summarize(tmp_path / "config.yaml", results)
    assert "training            : 600 steps in 7.5 min on cpu; best validation AP50 0.930 at step 400" in text
    train.update(stopped_early=True, stopped_at_step=500, length="16 epochs x 302 images / batch 8 -> 604 steps")
    (results / "ssd" / "train" / "train_summary.json").write_text(json.dumps(train))
    text = summarize(tmp_path / "config.yaml", results)
    assert "training            : 500 of 600 steps (stopped early) in 7.5 min" in text
    assert "length              : 16 epochs x 302 images / batch 8 -> 604 steps" in text
    assert "saved_model         : AP 0.700, AP50 0.910, 12 ms, 3.0 MB" in text
    assert "tflite_float32      : AP 0.700, AP50 0.900, 12 ms, 3.0 MB, finds 0.97 of the SavedModel's" in text
    assert "WARNING: tflite_int8 loses 0.110 AP50 against the SavedModel" in text
    assert "WARNING: tflite_float32" not in text
    # A model whose two forms were trained: both are listed, and the kept one is named first.
    (results / "ssd" / "two_stage" / "evaluation" / "saved_model").mkdir(parents=True)
    metrics = {"AP": 0.8, "AP50": 0.97, "latency_ms": {"median": 30.0}, "size_mb": 3.0}
    (results / "ssd" / "two_stage" / "evaluation" / "saved_model" / "metrics.json").write_text(json.dumps(metrics))
    choice = {"kept": "two_stage", "reason": "val AP50 0.95 > 0.90", "saved_model": "results/ssd/two_stage/saved_model"}
    (results / "ssd" / "form.json").write_text(json.dumps(choice))
    text = summarize(tmp_path / "config.yaml", results)
    assert "Model ssd: kept two_stage (val AP50 0.95 > 0.90); deploy results/ssd/two_stage/saved_model/" in text
    assert "Model ssd/two_stage:" in text and "saved_model         : AP 0.800, AP50 0.970, 30 ms" in text


def test_train_ends_its_process_at_once_with_everything_flushed(tmp_path: Path) -> None:
    """Only `train`, only from the process's own command line, ends without the interpreter's teardown."""
    import subprocess
    import sys

    from artdet.cli import build_parser

    assert build_parser().parse_args(["train", "--pipeline", "p", "--model-dir", "m"]).end_process is True
    assert not getattr(build_parser().parse_args(["label-map", "m.pbtxt", "--classes", "a"]), "end_process", False)
    log = tmp_path / "log.txt"
    code = (
        "import logging, sys\n"
        "from artdet.cli import end_process\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
        "logging.info('model written')\n"
        "sys.stdout.write('no newline yet')\n"
        "end_process()\n"
        "print('never')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "no newline yet", (done.stdout, done.stderr)
    assert "model written" in log.read_text()

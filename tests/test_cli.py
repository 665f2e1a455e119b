"""The command line: stages by hand, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artdet.cli import main
from artdet.voc import Annotation, Box, write_voc


def test_stages_chain_by_hand(demo_dir: Path, tmp_path: Path) -> None:
    images, manifest = tmp_path / "images", tmp_path / "manifest.json"
    assert main(["resize", str(demo_dir), str(images), str(manifest), "--max-side", "200"]) == 0
    assert main(["split", str(manifest), str(tmp_path / "split.csv"), "--test-fraction", "0.3"]) == 0
    assert main(["csv", str(manifest), str(tmp_path / "split.csv"), "train", str(tmp_path / "train.csv")]) == 0
    assert (
        main(
            [
                "label-map",
                str(manifest),
                str(tmp_path / "map.pbtxt"),
                "--classes",
                "portrait",
                "landscape",
                "abstract",
                "nocturne",
            ]
        )
        == 0
    )
    assert (tmp_path / "map.pbtxt").read_text().startswith("item {\n  id: 1\n  name: 'portrait'")
    entries = json.loads(manifest.read_text())
    assert len(entries) == 40 and all(max(e["width"], e["height"]) == 200 for e in entries)


def test_unknown_label_is_reported_with_exit_2(demo_dir: Path, tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "manifest.json"
    main(["resize", str(demo_dir), str(tmp_path / "images"), str(manifest)])
    assert main(["label-map", str(manifest), str(tmp_path / "map.pbtxt"), "--classes", "portrait"]) == 2
    err = capsys.readouterr().err
    assert "artdet label-map: error:" in err and "'abstract'" in err


def test_broken_annotation_names_the_file(tmp_path: Path, capsys) -> None:
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (50, 40)).save(data / "a.jpg")
    write_voc(Annotation("a.jpg", 50, 40, boxes=[Box("x", 1, 1, 20, 20)]), data / "a.xml")
    (data / "a.xml").write_text((data / "a.xml").read_text().replace("<xmin>1</xmin>", "<xmin>left</xmin>"))
    assert main(["resize", str(data), str(tmp_path / "out"), str(tmp_path / "m.json")]) == 2
    assert f"{data / 'a.xml'}: object 0 ('x') has a coordinate that is not a number" in capsys.readouterr().err


def test_demo_data_reads_count_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("demo:\n  count: 3\n  seed: 2\n")
    assert main(["demo-data", str(tmp_path / "d"), "--config", str(tmp_path / "config.yaml")]) == 0
    assert len(list((tmp_path / "d").glob("*.jpg"))) == 3


def test_unknown_command_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    assert info.value.code == 2

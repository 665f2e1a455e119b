"""One source of defaults: the config schema feeds the command line, and states each default once."""

from __future__ import annotations

import argparse

import pytest
import yaml

from artdet.cli import COMMANDS, build_parser
from artdet.cli.base import config_keys
from artdet.defaults import SCHEMA_PATH, default


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _leaf_defaults(node: dict, path: str = "") -> dict[str, object]:
    """Dotted key -> default of every schema node that states one ('*' for user-named entries)."""
    found = {}
    if "default" in node and path:
        found[path] = node["default"]
    for name, child in (node.get("properties") or {}).items():
        found |= _leaf_defaults(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("additionalProperties"), dict):
        found |= _leaf_defaults(node["additionalProperties"], f"{path}.*")
    return found


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_an_object_default_repeats_no_property_default_differently() -> None:
    """`evaluation: default: {...}` (used when the whole section is left out) agrees with its properties."""
    defaults = _leaf_defaults(_schema())
    checked = 0
    for key, value in defaults.items():
        if isinstance(value, dict):
            for name, inner in value.items():
                if f"{key}.{name}" in defaults:
                    assert defaults[f"{key}.{name}"] == inner, f"{key}: {name} is {inner}, not as its property says"
                    checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("command", "flag", "key"),
    [
        ("demo-data", "--count", "demo.count"),
        ("validate", "--max-side", "resize.max_side"),
        ("validate", "--negatives", "negatives"),
        ("resize", "--max-side", "resize.max_side"),
        ("resize", "--max-bytes", "resize.max_bytes"),
        ("split", "--test-fraction", "split.test_fraction"),
        ("split", "--val-fraction", "split.val_fraction"),
        ("split", "--seed", "split.seed"),
        ("data-report", "--near-duplicate-distance", "split.near_duplicate_distance"),
        ("fetch-checkpoint", "--cache", "checkpoint_cache"),
        ("evaluate", "--iou", "evaluation.iou_threshold"),
        ("evaluate", "--tolerance", "evaluation.export_tolerance"),
        ("evaluate", "--found-min-score", "evaluation.found_min_score"),
        ("detect", "--min-score", "detect.min_score"),
        ("serve", "--max-upload-mb", "serve.max_upload_mb"),
        ("serve", "--max-megapixels", "serve.max_megapixels"),
        ("export", "--checkpoint", "models.*.export_checkpoint"),
    ],
)
def test_options_that_mirror_config_keys_default_to_the_schema(command: str, flag: str, key: str) -> None:
    parser = _subparsers()[command]
    assert config_keys(parser).get(flag) == key
    dest = next(a.dest for a in parser._actions if flag in a.option_strings)
    assert parser.get_default(dest) == _leaf_defaults(_schema())[key]


# Options named like a config key that mean something else.
NOT_MIRRORED = {
    ("validate", "--shards"): "the number of shards --shard counts in; 1 is the whole folder",
    ("train", "--seed"): "the training seed; config.yaml has no such key",
    ("classify-features", "--shards"): "the number of shards --shard counts in; 1 is the whole folder",
    ("demo-data", "--classify"): "writes the classifier's demo instead; not the classify: section",
    ("serve", "--classifier"): "a classifier file served at /v1/classify; not a model's classifier: setting",
    ("choose-form", "--model"): "the model whose form is chosen; not review: model",
}


def test_no_option_named_like_a_config_key_hard_codes_its_default() -> None:
    """An option whose name is a config key's must take its default from the schema, not restate it."""
    names = {key.rsplit(".", 1)[-1] for key in _leaf_defaults(_schema())}
    for command, parser in _subparsers().items():
        mirrored = config_keys(parser)
        for action in parser._actions:
            if (
                action.option_strings
                and action.dest in names
                and (command, action.option_strings[0]) not in NOT_MIRRORED
            ):
                flag = action.option_strings[0]
                assert flag in mirrored, f"artdet {command} {flag} restates a default of config.yaml"
                assert action.default == default(mirrored[flag]), (command, flag)


def test_every_command_is_declared_once_with_a_module() -> None:
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert all(c.module.startswith("artdet.") for c in COMMANDS)


def test_scripts_keep_their_imports() -> None:
    """What the README documents for scripts, and its earlier names, import without loading TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys, artdet\n"
        "from artdet import Detector, prepare_dataset\n"
        "from artdet.predict import Detector as D2\n"
        "from artdet.prepare import prepare_dataset as p2\n"
        "assert Detector is D2 and prepare_dataset is p2\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

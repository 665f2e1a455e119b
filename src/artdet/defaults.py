"""One source for every default: the config schema, ``config.schema.yaml`` beside this module.

Snakemake validates ``config.yaml`` against that file and fills in what a user left out;
the command line and the package's functions take their defaults from it through
:func:`default`, so a default changed in the schema changes everywhere at once.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def schema() -> dict:
    """The config schema (JSON Schema, as YAML)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _node(key: str) -> dict:
    node = schema()
    for part in key.split("."):
        node = node["additionalProperties"] if part == "*" else node.get("properties", {}).get(part)
        if not isinstance(node, dict):
            raise KeyError(f"{SCHEMA_PATH.name} has no key {key!r}")
    return node


def default(key: str) -> Any:
    """The schema's default of a dotted config key: ``"split.test_fraction"``.

    ``*`` stands for any name in a mapping of user-named entries: ``"models.*.warmup_steps"``.
    A key without a default is an error, not ``None``.
    """
    node = _node(key)
    if "default" not in node:
        raise KeyError(f"{SCHEMA_PATH.name}: {key!r} has no default")
    return copy.deepcopy(node["default"])


def choices(key: str) -> list:
    """The allowed values of an enumerated config key."""
    return list(_node(key)["enum"])

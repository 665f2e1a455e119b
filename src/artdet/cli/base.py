"""What every subcommand shares: its declaration, defaults from the config schema, pins."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from artdet.defaults import default

log = logging.getLogger("artdet")


@dataclass(frozen=True)
class Command:
    """One ``artdet`` subcommand: its options, what it runs, and the module that does the work.

    ``module`` is what the README's map of stages names (rule -> command -> module); a test
    checks that it exists.
    """

    name: str
    help: str
    module: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


def config_option(parser: argparse.ArgumentParser, flag: str, key: str, help: str = "", **kwargs: Any) -> None:
    """An option that mirrors a ``config.yaml`` key: its default is the schema's (``key`` is dotted)."""
    value = default(key)
    parser.add_argument(flag, default=value, help=f"{help} (config.yaml {key}, default {value})".lstrip(), **kwargs)
    parser.set_defaults(_config_keys={**(parser.get_default("_config_keys") or {}), flag: key})


def config_keys(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The options of a subcommand that mirror config keys: flag -> dotted key."""
    return parser.get_default("_config_keys") or {}


def pins(args: argparse.Namespace) -> dict[str, str]:
    """Pinned sides from ``--pins-json`` or a ``--pins`` file."""
    from artdet.data.split import read_pins

    if getattr(args, "pins_json", None):
        return json.loads(args.pins_json)
    return read_pins(args.pins) if getattr(args, "pins", None) else {}

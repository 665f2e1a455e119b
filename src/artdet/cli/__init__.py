"""The ``artdet`` command line: one subcommand per workflow stage, grouped by role like the package.

Every Snakemake rule calls one of these subcommands, so each stage can also be
run by hand. Errors in the user's data or config end with a one-line message
that names the file, and exit status 2. Options that mirror a ``config.yaml``
key take their default from the config schema (:mod:`artdet.defaults`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

import yaml

import artdet
from artdet.cli import classify, data, deploy, evaluate, label, train
from artdet.cli.base import Command

# Every subcommand, in the order of the workflow.
COMMANDS: list[Command] = [
    *data.COMMANDS,
    *train.COMMANDS,
    *deploy.COMMANDS,
    *evaluate.COMMANDS,
    *classify.COMMANDS,
    *label.COMMANDS,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdet", description=artdet.__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=f"{command.help} ({command.module})")
        command.arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from artdet.data.dataset import DatasetError
    from artdet.data.voc import AnnotationError
    from artdet.deploy.detect import SourceError
    from artdet.train.checkpoints import CheckpointError

    try:
        args.func(args)
    except (
        CheckpointError,
        DatasetError,
        AnnotationError,
        SourceError,
        ValueError,
        FileNotFoundError,
        yaml.YAMLError,
    ) as exc:
        print(f"artdet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if argv is None and getattr(args, "end_process", False):
        end_process()
    return 0


def end_process() -> None:
    """Exit at once with status 0, everything written, skipping the interpreter's teardown.

    For commands whose work is done when they return (``train``: the final model and
    ``train_summary.json`` written, the summaries flushed): TensorFlow's tf.data thread pools
    took 40-60 s to wind down after 3 of 7 training runs measured, and Snakemake (and a time
    budget) waited on them. Only the process's own command line ends this way (``main()``
    without ``argv``); a caller's ``main([...])`` returns.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

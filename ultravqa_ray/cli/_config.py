"""Config-file commands: ``--config FILE``, repeatable ``--set key=value`` and shortcut flags.

A shortcut is ``(flag, dotted key, help)``: ``--model PATH`` is ``--set model.name_or_path=PATH``.
Precedence: the YAML file, then shortcuts, then ``--set`` (last wins).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

Shortcut = tuple[str, str, str]


def add_config_arguments(
    p, what: str, shortcuts: Sequence[Shortcut] = (), *, example: str = "jobs/configs/*.yaml",
    set_example: str = "data.decode.num_frames=16",
) -> None:
    """Add ``--config``, ``--set`` and one flag per shortcut to the parser ``p``.

    ``set_example`` must be a real field of the command's config (tests/test_cli.py loads it)."""
    p.add_argument("--config", type=Path, help=f"YAML file with {what} fields (e.g. {example})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a field with a dotted key, e.g. --set {set_example} (repeatable)")  # fmt: skip
    for flag, key, help_text in shortcuts:
        p.add_argument(flag, dest=key, metavar=key.split(".")[-1].upper(), help=f"{help_text} (sets {key})")


def result_stdout() -> IO[str]:
    """Keep stdout for the command's result: from now on whatever else is printed to ``sys.stdout``
    (Ray's raylet warnings, a library's prints) goes to stderr; returns the real stdout, where the
    command prints its JSON once it has succeeded (``SFT=$(... | jq -r .model_dir)`` stays parseable)."""
    real = sys.stdout
    sys.stdout = sys.stderr
    return real


def load_config(config_class: Any, args, shortcuts: Sequence[Shortcut], *, first: Sequence[str] = ()):
    """``config_class.load`` of ``--config`` with ``first``, the shortcuts given, then ``--set``."""
    given = [f"{key}={getattr(args, key)}" for _, key, _ in shortcuts if getattr(args, key, None) is not None]
    return config_class.load(args.config, [*first, *given, *args.overrides])

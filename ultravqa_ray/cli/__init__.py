"""The ``ultravqa-ray`` console script.

Each subcommand lives in its own module under this package and exposes ``register(subparsers)``;
argparse stops here: every command turns its arguments into a typed config and calls the same
library function the ``jobs/`` entry points call. Exit status 0 on success, non-zero with a
one-line reason on stderr otherwise (DESIGN.md section 7).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Subcommand modules, in the order --help lists them.
COMMANDS = (
    "synth", "broker", "model", "score", "demo", "score_batch", "stream", "moderate", "train", "reference", "eval",
    "label", "rationales", "promote", "retrain", "serve_swap", "plan",
)


class CommandError(RuntimeError):
    """A run that cannot proceed; main() prints the message as the one-line reason."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ultravqa-ray",
        description="Multi-dimension video quality scoring (UltraVQA / ASO) on Ray.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"ultravqa_ray.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # kafka-python logs every connection at INFO
        logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("ultravqa-ray: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError) as exc:
        print(f"ultravqa-ray {args.command}: {one_line(exc)}", file=sys.stderr)
        logging.getLogger(__name__).debug("failure", exc_info=True)
        return 1
    except Exception as exc:  # a failed Ray task or training run, a bug: still one line, never a traceback
        root = root_cause(exc)
        print(f"ultravqa-ray {args.command}: {type(root).__name__}: {one_line(root)} (-v for details)", file=sys.stderr)
        logging.getLogger(__name__).debug("failure", exc_info=True)
        return 1


def root_cause(exc: BaseException) -> BaseException:
    """The exception behind Ray's wrappers: a task error's ``cause``, a training run's first worker
    failure (``worker_failures``), or the ``__cause__`` chain."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        failures = getattr(exc, "worker_failures", None)
        inner = getattr(exc, "cause", None) or exc.__cause__
        if isinstance(failures, dict) and failures:
            inner = failures[min(failures)]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def one_line(exc: BaseException) -> str:
    """A one-line reason; pydantic errors become ``Model: field: problem; ...``."""
    from pydantic import ValidationError

    from connectors.wire.errors import describe_validation_error

    if isinstance(exc, ValidationError):
        return f"invalid {exc.title}: {describe_validation_error(exc)}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

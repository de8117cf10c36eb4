"""Write a synthetic UltraVQA-format corpus: ``python jobs/synth.py --out DIR --n N --seed S``.

The same function as ``ultravqa-ray synth``; runs as a Ray job too (it uses a local process
pool, not Ray tasks, because rendering is CPU-bound and short).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ultravqa_ray.data.synth import SynthConfig, generate_corpus


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, help="YAML with SynthConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set n=200 (repeatable)")  # fmt: skip
    return p


def main(out: Path, config: SynthConfig) -> Path:
    return generate_corpus(out, config)


if __name__ == "__main__":
    args = build_parser().parse_args()
    print(main(args.out, SynthConfig.load(args.config, args.overrides)), file=sys.stdout)

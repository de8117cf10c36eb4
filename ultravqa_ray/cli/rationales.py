"""``ultravqa-ray rationales``: write each video's rationales from the pooled human judgments."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ultravqa_ray.cli._config import add_config_arguments


def register(sub) -> None:
    p = sub.add_parser(
        "rationales",
        help="write rationales from pooled ratings (an OpenAI-compatible endpoint, else templates)",
        description=(
            "For every rated video and dimension of the manifest, write a rationale from the pooled human "
            "judgment (rating distribution, mean, sub-attribute counts, rater comments) and write the "
            "manifest again with it, ready for 'train sft'. With an endpoint (base_url/model in --config, "
            "or ULTRAVQA_LLM_BASE_URL, ULTRAVQA_LLM_MODEL, ULTRAVQA_LLM_API_KEY) a language model writes "
            "them: bounded concurrency, retries with backoff, an answer cache on disk, a check against the "
            "pooled score with one re-ask, then the template as fallback. Without one, the template writes "
            "them. Prints a summary as JSON."
        ),
    )
    p.add_argument("--manifest", type=Path, required=True, help="annotation manifest in (.jsonl or .parquet)")
    p.add_argument("--out", type=Path, required=True, help="annotation manifest out (.jsonl or .parquet)")
    add_config_arguments(p, "RationalesConfig", example="jobs/configs/rationales.yaml")
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.curation.rationales import EndpointError, RationalesConfig, RationaleWriter
    from ultravqa_ray.curation.records import rationales_for_records, read_annotated, rebase_uris
    from ultravqa_ray.schemas.manifest import write_manifest

    if args.out.suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"--out {args.out}: the manifest must end in .jsonl or .parquet")
    writer = RationaleWriter(RationalesConfig.load(args.config, args.overrides))
    items = read_annotated(args.manifest, writer.config.k)
    start = time.perf_counter()
    try:
        records = rationales_for_records(items, writer)
    except EndpointError as exc:
        raise CommandError(str(exc)) from None
    write_manifest(rebase_uris(records, args.manifest, args.out), args.out)
    summary = {
        "out": str(args.out),
        "videos": len(records),
        "writer": f"llm ({writer.config.model})" if writer.uses_endpoint else "template",
        **writer.stats.to_dict(),
        "wall_s": round(time.perf_counter() - start, 3),
    }
    print(json.dumps(summary, indent=2), file=sys.stdout)
    return 0

"""``ultravqa-ray moderate``: apply moderation rules to score events."""

from __future__ import annotations

from pathlib import Path

from ultravqa_ray.cli._config import add_config_arguments
from ultravqa_ray.cli._service import add_probe_arguments, probes, stop_on_signals


def register(sub) -> None:
    p = sub.add_parser(
        "moderate",
        help="moderation consumer: score events + rules YAML -> allow/review/block events",
        description=(
            "Consume score events in a consumer group (default ultravqa-moderate), apply the rules "
            "file (thresholds per dimension; the most severe firing rule wins) and write moderation "
            "events; invalid records become dead letters. The rules file is re-read when it changes, "
            "without a restart. Kafka connection: ULTRAVQA_KAFKA_* variables, overridden by the "
            "config file's `kafka:` section. At start it checks its topics (create_topics: true "
            "creates missing ones). SIGTERM stops after the current batch."
        ),
    )
    p.add_argument("--rules", type=Path, required=True, help="moderation rules YAML (serve_configs/moderation_rules.yaml)")
    add_config_arguments(p, "ModerationConfig", example="serve_configs/moderate.yaml", set_example="max_batch=32")
    add_probe_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from connectors.kafka.topics import MissingTopicError
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.pipelines.kafka_client import OutputLost
    from ultravqa_ray.pipelines.moderation import ModerationConfig, Moderator, ReloadingRules

    config = ModerationConfig.load(args.config, args.overrides)
    rules = ReloadingRules(args.rules, config.reload_interval_s)
    stop = stop_on_signals()
    moderator = Moderator(config, rules)
    with probes(args, moderator):
        try:
            moderator.run(stop)
        except (OutputLost, MissingTopicError) as exc:
            raise CommandError(str(exc)) from exc
    return 0

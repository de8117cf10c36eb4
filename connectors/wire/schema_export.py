"""Export the JSON Schema of every wire message into ``connectors/wire/schemas/``.

Run ``python -m connectors.wire.schema_export`` after changing a message; a test fails while the
files in the repository differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from connectors.wire.messages import DeadLetter, ModerationEvent, ScoreEvent, UploadEvent

SCHEMA_DIR = Path(__file__).with_name("schemas")
MESSAGES = {
    "upload_event": UploadEvent,
    "score_event": ScoreEvent,
    "dead_letter": DeadLetter,
    "moderation_event": ModerationEvent,
}


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of each message's schema."""
    out = {}
    for name, model in MESSAGES.items():
        schema = model.model_json_schema(mode="validation")  # type: ignore[attr-defined]  # a BaseModel class
        schema["$id"] = f"https://ultravqa-ray.dev/schemas/{name}.v1.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def export_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_schemas().items():
        path = directory / filename
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in export_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)

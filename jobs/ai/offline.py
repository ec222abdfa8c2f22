"""The offline backend: deterministic, no network; every output says it is offline."""

import hashlib
import json
import time

from django.conf import settings

from jobs.ai.base import Progress, Request, Result
from jobs.output import estimate_output_tokens

LABEL = "offline preview"


class OfflineBackend:
    name = "offline"

    def generate(self, request: Request, on_progress: Progress) -> Result:
        text = self._text(request)
        input_tokens = estimate_output_tokens(request.system + request.prompt)
        chunks = 8
        step = max(len(text) // chunks, 1)
        for end in range(step, len(text) + step, step):
            # Paced like a real stream, so the live progress on the job page can be seen.
            time.sleep(settings.OFFLINE_STREAM_SECONDS / chunks)
            so_far = text[:end]
            on_progress(so_far, input_tokens, estimate_output_tokens(so_far))
        return Result(
            text=text, input_tokens=input_tokens, output_tokens=estimate_output_tokens(text)
        )

    def probe(self) -> None:
        """Nothing to check: no key, no network."""

    def _text(self, request: Request) -> str:
        digest = hashlib.sha256(request.prompt.encode()).hexdigest()[:12]
        if "Reply with one JSON document" in request.system:
            schema = _schema_in(request.system)
            return json.dumps(_sample(schema, digest), indent=2)
        excerpt = request.prompt.strip().replace("\n", " ")[:200]
        return (
            f"> **Offline preview** — this answer was made without a model (AI_BACKEND=offline), "
            f"so it only shows the shape of a result.\n\n"
            f"## Your request\n\n{excerpt}\n\n"
            f"## What a model would do\n\n"
            f"- Read the skill's instructions ({len(request.system)} characters)\n"
            f"- Answer with **{request.model}** in at most {request.max_tokens} tokens\n"
            f"- Format the answer as Markdown, like this page\n\n"
            f"```python\n# fingerprint of your input\nprint({digest!r})\n```\n"
        )


def _schema_in(system: str) -> dict:
    _, _, tail = system.partition("It must validate against this JSON Schema:\n")
    try:
        return json.loads(tail) if tail else {}
    except json.JSONDecodeError:
        return {}


def _sample(schema: dict, seed: str):
    """Return a small document that validates against `schema`, strings marked offline."""
    kind = schema.get("type", "object")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        properties = schema.get("properties") or {"note": {"type": "string"}}
        return {name: _sample(sub, seed) for name, sub in properties.items()}
    if kind == "array":
        return [
            _sample(schema.get("items", {"type": "string"}), seed)
            for _ in range(max(schema.get("minItems", 2), 1))
        ]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    return f"({LABEL} {seed})"

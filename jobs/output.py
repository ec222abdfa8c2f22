"""What a skill asks of the model's output, and checking the output against it."""

import json
import re
from dataclasses import dataclass

import jsonschema

from marketplace.models import Skill

FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)\n?```", re.DOTALL)


class InvalidOutput(Exception):
    """The output is not what the skill promises; `message` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Output:
    text: str
    data: object | None  # parsed JSON for JSON skills


def estimate_output_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def system_prompt(skill: Skill) -> str:
    """Return the skill's system prompt, with the output contract for JSON skills."""
    if skill.output_format != Skill.OutputFormat.JSON:
        return skill.system_prompt
    contract = "Reply with one JSON document and nothing else: no prose, no code fences."
    if skill.json_schema:
        contract += " It must validate against this JSON Schema:\n" + json.dumps(skill.json_schema)
    return f"{skill.system_prompt}\n\n{contract}"


def extract_json(text: str) -> object:
    """Return the JSON document in `text`, tolerating code fences and prose around it."""
    candidates = [match.group(1) for match in FENCE_RE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        candidate = candidate.strip()
        for start, char in enumerate(candidate):
            if char in "{[":
                try:
                    value, _ = decoder.raw_decode(candidate, start)
                    return value
                except json.JSONDecodeError:
                    continue
    raise InvalidOutput("The model's output held no valid JSON document.")


def parse_output(skill: Skill, text: str) -> Output:
    """Check the output against the skill's format and schema."""
    if not text.strip():
        raise InvalidOutput("The model returned an empty answer.")
    if skill.output_format != Skill.OutputFormat.JSON:
        return Output(text=text, data=None)
    data = extract_json(text)
    if skill.json_schema:
        validator = jsonschema.validators.validator_for(skill.json_schema)(skill.json_schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "the top level"
            raise InvalidOutput(
                f"The JSON does not match the skill's schema at {where}: {error.message}"
            )
    return Output(text=text, data=data)

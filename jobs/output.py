"""What a skill asks of the model's output, and checking the output against it."""

import json
from dataclasses import dataclass

from jobs.ai.base import PermanentGenerationError, RetryableGenerationError
from marketplace import jsonsafe
from marketplace.models import Skill
from marketplace.schemas import SchemaRefused, compile_json_schema

# The longest answer a JSON skill may return: far above any allowed model's output limit.
MAX_JSON_CHARS = 500_000
FENCE = "```"


class InvalidOutput(RetryableGenerationError):
    """The output is not what the skill promises (no JSON, or not the schema's): try again."""


class EmptyAnswer(RetryableGenerationError):
    """The model answered nothing: worth one more try, not more."""


class SkillUnusable(PermanentGenerationError):
    """The skill's own settings cannot be run (a schema saved before today's checks)."""


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
    """Return the JSON document in `text`: the first fenced block, or else the whole answer.

    One parse, never a scan from every bracket: a fenced block's content, or the answer from
    its first opening bracket to its last closing one (prose around it is tolerated). Length
    and nesting are checked before the parse (marketplace.jsonsafe).
    """
    candidate = _fenced(text)
    if candidate is None:
        candidate = _outermost(text)
    if candidate is None:
        raise InvalidOutput("The model's output held no JSON document.")
    try:
        return jsonsafe.loads(candidate, max_chars=MAX_JSON_CHARS)
    except jsonsafe.JSONTooLarge as error:
        raise InvalidOutput(f"The model's JSON was refused: {error}") from None
    except ValueError as error:
        raise InvalidOutput(f"The model's output held no valid JSON document: {error}") from None


def _fenced(text: str) -> str | None:
    """Return the content of the first ``` or ```json block, if the text has a closed one."""
    start = text.find(FENCE)
    while start != -1:
        line_end = text.find("\n", start)
        if line_end == -1:
            return None
        language = text[start + len(FENCE) : line_end].strip()
        end = text.find(FENCE, line_end)
        if end == -1:
            return None
        if language in ("", "json", "JSON"):
            return text[line_end + 1 : end]
        start = text.find(FENCE, end + len(FENCE))
    return None


def _outermost(text: str) -> str | None:
    starts = [i for i in (text.find("{"), text.find("[")) if i != -1]
    end = max(text.rfind("}"), text.rfind("]"))
    if not starts or end < min(starts):
        return None
    return text[min(starts) : end + 1]


def parse_output(skill: Skill, text: str) -> Output:
    """Check the output against the skill's format and schema."""
    if not text.strip():
        raise EmptyAnswer("The model returned an empty answer.")
    if skill.output_format != Skill.OutputFormat.JSON:
        return Output(text=text, data=None)
    data = _without_nul(extract_json(text)) if "\\u0000" in text else extract_json(text)
    if skill.json_schema:
        try:
            validator = compile_json_schema(skill.json_schema)
        except SchemaRefused as error:
            raise SkillUnusable(
                f"The skill's JSON schema cannot be used: {error.message}"
            ) from None
        error = next(iter(validator.iter_errors(data)), None)
        if error is not None:
            where = "/".join(str(part) for part in error.instance_path) or "the top level"
            raise InvalidOutput(
                f"The JSON does not match the skill's schema at {where}: {error.message}"
            )
    return Output(text=text, data=data)


def _without_nul(value: object) -> object:
    """Drop NUL characters from every string in a parsed document (PostgreSQL refuses them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value

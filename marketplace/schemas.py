"""The JSON Schemas providers write: refused at save when they could hurt the platform, and
compiled for the worker with a linear-time regex engine.

Validation runs on jsonschema-rs (Rust) with its `regex` engine (RegexOptions): `pattern` and
`patternProperties` match in time linear in the input, so `^(a+)+$` cannot stall a worker
whatever the model writes. Patterns that engine cannot run (lookaround, backreferences) are
refused at save; a schema saved before these checks is checked again before each use.
"""

import json
from bisect import bisect_left
from functools import lru_cache
from urllib.parse import unquote

import jsonschema_rs

MAX_SCHEMA_CHARS = 20_000
MAX_SCHEMA_DEPTH = 32
# Keywords that resolve at run time, against a dynamic scope this check cannot follow.
DYNAMIC_REFS = ("$dynamicRef", "$recursiveRef")


class SchemaRefused(ValueError):
    """The schema is not one Vendo runs; `message` says why, for the provider."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_json_schema(schema: object) -> None:
    """Raise SchemaRefused unless `schema` is a JSON Schema that is safe to run.

    Bounded in size and depth; every `$ref` local ("#" or "#/json/pointer"), resolvable, and
    never leading back to itself; valid against its metaschema; every pattern runnable by the
    linear-time engine.
    """
    if schema is False:
        raise SchemaRefused(
            "This schema (false) accepts no answer at all: every job would fail after its buyer "
            'paid. Write a JSON object, such as {"type": "object"}.'
        )
    if schema is True:
        raise SchemaRefused(
            "This schema (true) checks nothing: leave the box empty for no schema, or write a "
            'JSON object, such as {"type": "object"}.'
        )
    if not isinstance(schema, dict):
        raise SchemaRefused(
            f'A JSON schema is a JSON object, such as {{"type": "object"}}, not {_kind(schema)}.'
        )
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise SchemaRefused(f"Keep the schema under {MAX_SCHEMA_CHARS:,} characters.")
    refs = _refs(schema)
    _check_refs(schema, refs)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as error:
        raise SchemaRefused(f"Not a valid JSON schema: {error.message}") from None
    except Exception as error:  # an unknown $schema, for one
        raise SchemaRefused(f"Not a valid JSON schema: {error}") from None
    try:
        _build(schema)
    except Exception as error:
        raise SchemaRefused(
            "Vendo cannot run this schema (patterns may not use lookaround or backreferences): "
            + _first_line(error)
        ) from None
    reason = _never_met(schema)
    if reason:
        raise SchemaRefused(
            f"No answer can satisfy this schema: {reason} Every job would fail after its buyer "
            "paid."
        )


def _kind(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"a number ({json.dumps(value)})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# What the worker reads from an answer: a JSON object or array (jobs.output.extract_json).
ANSWER_TYPES = {"object", "array"}


def _never_met(schema: object, depth: int = 0, *, top: bool = True) -> str:
    """Return why no answer can ever satisfy `schema` (the plain cases), or "" if one may.

    Deciding it in general is as hard as solving the schema; these are the mistakes people
    make: false, an empty enum, a top-level type no answer has, a required property whose
    schema is false, "not" of everything, an allOf with such a part.
    """
    if schema is False:
        return "it is false."
    if not isinstance(schema, dict) or depth > 4:
        return ""
    if schema.get("not") in ({}, True):
        return '"not" of a schema that accepts everything accepts nothing.'
    if schema.get("enum") == []:
        return "its enum lists no value."
    if top:
        types = schema.get("type")
        types = [types] if isinstance(types, str) else types
        if isinstance(types, list) and not ANSWER_TYPES & set(types):
            listed = ", ".join(types) or "none"
            return (
                f"an answer is a JSON object or array, and the top-level type allows only {listed}."
            )
        if "const" in schema and not isinstance(schema["const"], (dict, list)):
            return "an answer is a JSON object or array, and the top-level const is neither."
    properties = schema.get("properties")
    required = schema.get("required")
    if isinstance(properties, dict) and isinstance(required, list):
        for name in required:
            if isinstance(name, str) and properties.get(name) is False:
                return f'the property "{name}" is required, and its schema is false.'
    for part in schema.get("allOf") or []:
        reason = _never_met(part, depth + 1, top=top)
        if reason:
            return f"a part of allOf can never be met: {reason}"
    for keyword in ("anyOf", "oneOf"):
        parts = schema.get(keyword)
        if (
            isinstance(parts, list)
            and parts
            and all(_never_met(p, depth + 1, top=top) for p in parts)
        ):
            return f"none of the {keyword} choices can be met."
    return ""


def compile_json_schema(schema: dict) -> jsonschema_rs.Validator:
    """Return a validator for `schema`, checked as at save (SchemaRefused) and cached."""
    return _compiled(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=256)
def _compiled(canonical: str) -> jsonschema_rs.Validator:
    schema = json.loads(canonical)
    check_json_schema(schema)
    return _build(schema)


def _build(schema: dict) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(
        schema,
        pattern_options=jsonschema_rs.RegexOptions(),
        validate_formats=False,
        retriever=_no_remote,
    )


def _no_remote(uri: str):
    raise SchemaRefused(f"Remote references are not followed: {uri}")


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _refs(schema: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Return (where, target) for every `$ref`, as JSON pointer parts; check depth and kinds."""
    refs = []
    stack: list[tuple[object, tuple[str, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_SCHEMA_DEPTH:
            raise SchemaRefused(f"Keep the schema under {MAX_SCHEMA_DEPTH} levels deep.")
        if isinstance(node, dict):
            for keyword in DYNAMIC_REFS:
                if keyword in node:
                    raise SchemaRefused(f"{keyword} is not supported; use a local $ref.")
            if path and isinstance(node.get("$id"), str):
                raise SchemaRefused("Use $id only at the top of the schema.")
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append((path, _target(ref)))
            stack.extend((value, (*path, str(key))) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, str(index))) for index, value in enumerate(node))
    return refs


def _target(ref: str) -> tuple[str, ...]:
    """Return the JSON pointer parts of a local reference; refuse any other reference."""
    if not ref.startswith("#"):
        raise SchemaRefused(f"Only local references (starting with #) are allowed: {ref}")
    pointer = unquote(ref[1:])
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise SchemaRefused(f"Write local references as JSON pointers (#/...): {ref}")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/"))


def _resolve(schema: dict, target: tuple[str, ...]) -> object:
    node: object = schema
    for part in target:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaRefused(f"$ref {_pointer(target)} points to nothing in the schema.")
    if not isinstance(node, (dict, bool)):
        raise SchemaRefused(f"$ref {_pointer(target)} points to something that is no schema.")
    return node


def _pointer(parts: tuple[str, ...]) -> str:
    return "#" + "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _check_refs(schema: dict, refs: list) -> None:
    """Refuse unresolvable references and any chain of references that returns to itself.

    Following a `$ref` leads into its target, and so to every `$ref` inside the target. A
    reference that can reach itself that way (`{"$ref": "#"}`, two definitions that point at
    each other, a property that refers back to an enclosing schema) is refused.
    """
    for _, target in refs:
        _resolve(schema, target)
    places = sorted(where for where, _ in refs)
    target_of = dict(refs)

    def inside(target: tuple[str, ...]) -> list[tuple[str, ...]]:
        found, start = [], bisect_left(places, target)
        for where in places[start:]:
            if where[: len(target)] != target:
                break
            found.append(where)
        return found

    state: dict[tuple[str, ...], int] = {}  # 1: being followed, 2: done
    for first in places:
        if state.get(first):
            continue
        state[first] = 1
        stack = [(first, iter(inside(target_of[first])))]
        while stack:
            where, following = stack[-1]
            step = next(following, None)
            if step is None:
                state[where] = 2
                stack.pop()
            elif state.get(step) == 1:
                raise SchemaRefused(
                    f"The $ref at {_pointer(step)} leads back to itself: "
                    "references may not form a cycle."
                )
            elif not state.get(step):
                state[step] = 1
                stack.append((step, iter(inside(target_of[step]))))

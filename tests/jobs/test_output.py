"""Checking a model's answer can neither stall nor crash a worker, whatever the answer holds.

No timed assertions: each check that used to take seconds to hours runs in a thread with a
generous join timeout, so backtracking or a quadratic scan would hang past it and fail.
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobs.output import InvalidOutput, extract_json, parse_output
from tests.factories import JsonSkillFactory

ROOT = Path(__file__).resolve().parents[2]
GENEROUS = 30.0  # seconds; each check below takes microseconds to milliseconds

EVIL = "a" * 40 + "!"
# Python's re needs about 1.6 s for 26 characters against this pattern, x4 per two more.
REDOS_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
    "patternProperties": {"^(b+)+$": {"type": "string"}},
    "additionalProperties": False,
}


def in_thread(function, *args):
    """Run function(*args) in a thread; return (finished, result or exception)."""
    box = {}

    def target():
        try:
            box["result"] = function(*args)
        except BaseException as error:  # the caller asserts on it
            box["result"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(GENEROUS)
    return not thread.is_alive(), box.get("result")


def test_a_backtracking_pattern_finishes_while_another_task_keeps_running():
    skill = JsonSkillFactory.build(json_schema=REDOS_SCHEMA)
    answer = f'{{"code": "{EVIL}", "{"b" * 40 + "!"}": "x"}}'
    other_task = threading.Event()
    ticks = []

    def another_task():
        # A payment task in the same process: it needs the GIL to make any progress.
        for _ in range(20):
            ticks.append(1)
            threading.Event().wait(0.01)
        other_task.set()

    def validate_until_the_other_task_is_done():
        errors = []
        while not other_task.is_set():
            try:
                parse_output(skill, answer)
            except InvalidOutput as error:
                errors.append(error.detail)
        return errors

    thread = threading.Thread(target=another_task, daemon=True)
    thread.start()
    finished, errors = in_thread(validate_until_the_other_task_is_done)
    thread.join(GENEROUS)

    assert finished, "validating the pattern stalled the worker"
    assert other_task.is_set() and len(ticks) == 20
    assert errors and "does not match" in errors[0]


def test_a_matching_pattern_still_validates():
    skill = JsonSkillFactory.build(json_schema=REDOS_SCHEMA)

    assert parse_output(skill, '{"code": "aaaa", "bbb": "x"}').data == {"code": "aaaa", "bbb": "x"}


def test_eight_thousand_unclosed_brackets_are_rejected_at_once():
    # A parse from every bracket took 17 s per attempt here.
    finished, result = in_thread(extract_json, "Here you go: " + "[" * 8_000)

    assert finished
    assert isinstance(result, InvalidOutput)


def test_many_objects_each_unclosed_are_rejected_at_once():
    finished, result = in_thread(extract_json, '{"a": ' * 8_000 + " and some prose")

    assert finished
    assert isinstance(result, InvalidOutput)


def test_eighty_thousand_nested_brackets_do_not_crash_the_process():
    # web3 raises the recursion limit to 100,000: json's C parser then overflowed the stack
    # (SIGSEGV) on this input. A crash here would kill only the child process.
    code = (
        "import os, sys, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "django.setup()\n"
        "import web3\n"
        "from jobs.output import InvalidOutput, extract_json\n"
        "assert sys.getrecursionlimit() >= 100_000\n"
        "for text in ['[' * 80_000 + ']' * 80_000, '{\"a\":' * 80_000 + '1' + '}' * 80_000]:\n"
        "    try:\n"
        "        extract_json(text)\n"
        "    except InvalidOutput as error:\n"
        "        print('REFUSED', error.detail)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DEBUG": "true"},
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("REFUSED") == 2
    assert "nests deeper than" in result.stdout


def test_an_answer_over_the_length_cap_is_rejected():
    with pytest.raises(InvalidOutput, match="longer than"):
        extract_json("[" + "1, " * 300_000 + "1]")


def test_json_is_taken_from_the_first_fence_or_else_the_whole_answer():
    assert extract_json('Sure:\n```json\n{"a": 1}\n```\nand ```\n{"b": 2}\n```') == {"a": 1}
    assert extract_json('```python\nx = 1\n```\n```\n{"b": 2}\n```') == {"b": 2}
    assert extract_json('  {"a": [1, 2]}  ') == {"a": [1, 2]}
    assert extract_json('The result is {"a": 1}. Enjoy.') == {"a": 1}
    with pytest.raises(InvalidOutput):
        extract_json('Two documents: {"a": 1} and {"b": 2}')
    with pytest.raises(InvalidOutput):
        extract_json("no JSON at all")


def test_nesting_within_the_limit_is_accepted():
    value = extract_json("[" * 60 + "]" * 60)
    depth = 0
    while isinstance(value, list) and value:
        value, depth = value[0], depth + 1
    assert depth == 59

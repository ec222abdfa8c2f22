"""What a failed generation attempt means: every exception becomes one classified outcome.

Buyers read only the fixed message of an outcome (on the job page and in status.json); the
detail, which may quote the AI provider, carry a request id or echo the skill's schema and the
model's output, stays in the job's `error_detail` for providers and operators, and in the logs.
"""

import traceback
from dataclasses import dataclass
from enum import StrEnum

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError

from jobs.ai.base import GenerationError, PlatformUnavailable
from jobs.output import EmptyAnswer, InvalidOutput, SkillUnusable


class Kind(StrEnum):
    RETRY = "retry"  # transient: try again with backoff, up to GENERATION_MAX_RETRIES
    RETRY_ONCE = "retry_once"  # an empty answer: one more try
    FAIL = "fail"  # deterministic: the same call would fail the same way
    HOLD = "hold"  # the platform's key is refused: wait for it to work again


# The buyer's fixed messages.
RETRYING = "The AI service had a temporary problem. The job is being tried again."
RETRYING_FORMAT = (
    "The model's answer did not match the format this skill promises. The job is being tried again."
)
RETRYING_EMPTY = "The model returned an empty answer. The job is being tried again."
HELD = (
    "Waiting for the platform: the AI service is not accepting the platform's requests right "
    "now. The job is saved and resumes by itself."
)
FAILED = "The agent could not produce a result."
GAVE_UP = "The AI service kept failing, so the job was stopped."
REFUSED = "The model declined this request."
TOO_LONG = "The answer was longer than this skill allows."
WRONG_FORMAT = "The model's answers did not match the format this skill promises."
EMPTY = "The model returned empty answers."
SKILL_BROKEN = "This skill's settings cannot be run right now; its provider can see why."


class Refusal(GenerationError):
    """The model declined to answer (stop_reason refusal): asking again changes nothing."""


class AnswerTooLong(GenerationError):
    """A JSON answer stopped at the skill's output limit: the document is cut."""


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    public: str  # for the buyer: fixed, never from outside
    detail: str  # for the provider, operators and the logs
    reason: str  # a short name, recorded on the timeline's event data
    trace: str = ""


def classify(error: BaseException) -> Outcome:
    """Return the outcome of `error`, raised by the model call, the checks or the save."""
    trace = "".join(traceback.format_exception(error))
    match error:
        case PlatformUnavailable():
            return Outcome(Kind.HOLD, HELD, error.detail, "platform", trace)
        case Refusal():
            return Outcome(Kind.FAIL, REFUSED, error.detail, "refusal", trace)
        case AnswerTooLong():
            return Outcome(Kind.FAIL, TOO_LONG, error.detail, "max_tokens", trace)
        case SkillUnusable():
            return Outcome(Kind.FAIL, SKILL_BROKEN, error.detail, "skill", trace)
        case EmptyAnswer():
            return Outcome(Kind.RETRY_ONCE, RETRYING_EMPTY, error.detail, "empty", trace)
        case InvalidOutput():
            return Outcome(Kind.RETRY, RETRYING_FORMAT, error.detail, "invalid_output", trace)
        case GenerationError() if error.retryable:
            return Outcome(Kind.RETRY, RETRYING, error.detail, "transient", trace)
        case GenerationError():
            return Outcome(Kind.FAIL, FAILED, error.detail, "permanent", trace)
        case SoftTimeLimitExceeded():
            detail = "The task's time limit ran out."
            return Outcome(Kind.RETRY, RETRYING, detail, "timeout", trace)
        case DatabaseError():
            # Data the database refuses (too long, a NUL byte, a constraint) is refused again.
            detail = f"The result could not be saved: {type(error).__name__}: {error}"
            return Outcome(Kind.FAIL, FAILED, detail, "save", trace)
        case _:
            # A bug or an answer nothing expected (RecursionError, ValueError, ...): running the
            # same job again would end the same way, so it fails for good, refund due.
            detail = f"Unexpected {type(error).__name__}: {error}"
            return Outcome(Kind.FAIL, FAILED, detail, "unexpected", trace)


def failed_message(outcome: Outcome) -> str:
    """Return the buyer's message when a retried outcome runs out of tries."""
    if outcome.reason == "invalid_output":
        return WRONG_FORMAT
    if outcome.reason == "empty":
        return EMPTY
    return GAVE_UP

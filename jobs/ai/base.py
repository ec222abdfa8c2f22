"""The small interface every AI backend implements, and the errors it may raise."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class GenerationError(Exception):
    """A model call or its answer failed.

    `detail` says what happened for the provider, operators and the logs (it may quote the AI
    provider, a request id or the skill's schema); buyers only ever read the fixed message of
    the outcome (jobs.outcomes).
    """

    retryable = False

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RetryableGenerationError(GenerationError):
    """Rate limits, overload, 5xx, connection trouble, timeouts, cut streams: try again later."""

    retryable = True


class PermanentGenerationError(GenerationError):
    """Bad requests, unknown models, refusals: trying again would fail the same way."""


class PlatformUnavailable(GenerationError):
    """The AI provider refuses the platform's own key (401, 402, 403): revoked, out of credit,
    not allowed. No job is at fault; paid jobs wait until the key works again."""


@dataclass(frozen=True)
class Request:
    model: str
    system: str
    prompt: str
    max_tokens: int


@dataclass(frozen=True)
class Result:
    text: str
    input_tokens: int
    output_tokens: int
    # Why the model stopped: end_turn, max_tokens, refusal, stop_sequence, ...
    stop_reason: str = "end_turn"


class Progress(Protocol):
    """What a backend reports to while it runs a request."""

    def __call__(self, text: str, input_tokens: int, output_tokens: int) -> None:
        """Take the text so far and the token counts; may raise to stop the call."""

    def watch(self, abandon: Callable[[], None]) -> None:
        """Keep `abandon`, which ends the open call from another thread if the job is lost."""


class Backend(Protocol):
    name: str

    def generate(self, request: Request, on_progress: Progress) -> Result:
        """Run the request, calling on_progress as output arrives; return the whole result."""

    def probe(self) -> None:
        """Check, at no cost, that the platform's key works; raise GenerationError if not."""

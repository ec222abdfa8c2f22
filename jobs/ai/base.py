"""The small interface every AI backend implements, and the errors it may raise."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class GenerationError(Exception):
    """A model call failed; `message` is worded for the buyer and the provider."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableGenerationError(GenerationError):
    """Rate limits, overload, 5xx, connection trouble, timeouts, cut streams: try again later."""

    retryable = True


class PermanentGenerationError(GenerationError):
    """Bad requests, authentication, unknown models: trying again would fail the same way."""


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


# Called as text streams in: (text so far, input tokens, output tokens so far).
ProgressCallback = Callable[[str, int, int], None]


class Backend(Protocol):
    name: str

    def generate(self, request: Request, on_progress: ProgressCallback) -> Result:
        """Run the request, calling on_progress as output arrives; return the whole result."""

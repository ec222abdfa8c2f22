"""The Anthropic backend: the official SDK, streaming through messages.stream."""

import anthropic
import httpx2
from django.conf import settings

from jobs.ai.base import (
    PermanentGenerationError,
    ProgressCallback,
    Request,
    Result,
    RetryableGenerationError,
)
from jobs.output import estimate_output_tokens

RETRYABLE_TYPES = {"overloaded_error", "api_error", "rate_limit_error"}


class AnthropicBackend:
    name = "anthropic"

    def __init__(self) -> None:
        # The SDK's own retries stay low: our task retries with backoff and records each try.
        self.client = anthropic.Anthropic(
            api_key=settings.ANTHROPIC_API_KEY,
            base_url=settings.ANTHROPIC_BASE_URL,
            max_retries=settings.ANTHROPIC_MAX_RETRIES,
            timeout=httpx2.Timeout(settings.GENERATION_TIMEOUT, connect=10.0),
        )

    def generate(self, request: Request, on_progress: ProgressCallback) -> Result:
        text, input_tokens = "", 0
        try:
            with self.client.messages.stream(
                model=request.model,
                max_tokens=request.max_tokens,
                system=request.system,
                messages=[{"role": "user", "content": request.prompt}],
            ) as stream:
                for event in stream:
                    if event.type == "message_start":
                        input_tokens = event.message.usage.input_tokens
                    elif event.type == "text":
                        text = event.snapshot
                        on_progress(text, input_tokens, estimate_output_tokens(text))
                message = stream.get_final_message()
        except anthropic.APIStatusError as error:
            raise _classify(error) from error
        except (anthropic.APIConnectionError, httpx2.TransportError) as error:
            raise RetryableGenerationError("The connection to the model broke off.") from error
        if message.stop_reason is None:
            # The SDK hands back a stream cut before message_stop as if it had ended.
            raise RetryableGenerationError("The model's stream was cut off before it finished.")
        text = "".join(block.text for block in message.content if block.type == "text")
        return Result(
            text=text,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
        )


def _classify(error: anthropic.APIStatusError):
    kind = getattr(error, "type", None) or (error.body or {}).get("error", {}).get("type")
    if error.status_code == 429 or error.status_code >= 500 or kind in RETRYABLE_TYPES:
        what = {429: "The model is rate-limited", 529: "The model is overloaded"}.get(
            error.status_code,
            "The model is overloaded" if kind == "overloaded_error" else "The model service failed",
        )
        return RetryableGenerationError(f"{what} ({error.status_code}).")
    return PermanentGenerationError(
        f"The model refused the request ({error.status_code}): {_api_message(error)}"
    )


def _api_message(error: anthropic.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    return body.get("error", {}).get("message") or str(error)

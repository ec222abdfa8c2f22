"""The Anthropic backend: the official SDK, streaming through messages.stream."""

import contextlib
import socket

import anthropic
import httpx2
from django.conf import settings

from jobs.ai.base import (
    GenerationError,
    PermanentGenerationError,
    PlatformUnavailable,
    Progress,
    Request,
    Result,
    RetryableGenerationError,
)
from jobs.output import estimate_output_tokens

# The platform's own key is refused: revoked (401), out of credit (402), not allowed (403).
PLATFORM_STATUSES = {401, 402, 403}
# Worth another try later, as the SDK itself judges them; and every 5xx.
TRANSIENT_STATUSES = {408, 409, 429}
# How much of an error body the detail quotes (a proxy's HTML page can be long).
DETAIL_CHARS = 300


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

    def generate(self, request: Request, on_progress: Progress) -> Result:
        text, input_tokens = "", 0
        try:
            with self.client.messages.stream(
                model=request.model,
                max_tokens=request.max_tokens,
                system=request.system,
                messages=[{"role": "user", "content": request.prompt}],
            ) as stream:
                on_progress.watch(lambda: _abandon(stream))
                for event in stream:
                    if event.type == "message_start":
                        input_tokens = event.message.usage.input_tokens
                    elif event.type == "text":
                        text = event.snapshot
                        on_progress(text, input_tokens, estimate_output_tokens(text))
                message = stream.get_final_message()
        except anthropic.APIStatusError as error:
            raise classify_status(error) from error
        except (anthropic.APIConnectionError, httpx2.TransportError) as error:
            raise RetryableGenerationError(
                f"The connection to the model broke off: {error}"
            ) from error
        if message.stop_reason is None:
            # The SDK hands back a stream cut before message_stop as if it had ended.
            raise RetryableGenerationError("The model's stream was cut off before it finished.")
        text = "".join(block.text for block in message.content if block.type == "text")
        return Result(
            text=text,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            stop_reason=message.stop_reason,
        )

    def probe(self) -> None:
        """List one model: free, and refused exactly when the key is."""
        try:
            self.client.models.list(limit=1)
        except anthropic.APIStatusError as error:
            raise classify_status(error) from error
        except (anthropic.APIConnectionError, httpx2.TransportError) as error:
            raise RetryableGenerationError(f"The AI provider is out of reach: {error}") from error


def classify_status(error: anthropic.APIStatusError) -> GenerationError:
    """Classify an API error by its HTTP status first; read the body only for the detail.

    The body may be the API's JSON, `{"error": "text"}`, or a proxy's HTML page: any of them
    gives a detail and none can break the classification.
    """
    status = error.status_code
    detail = f"Anthropic answered {status}: {_body_message(error)}"
    request_id = getattr(error, "request_id", None)
    if request_id:
        detail += f" (request {request_id})"
    if status in PLATFORM_STATUSES:
        return PlatformUnavailable(detail)
    if status in TRANSIENT_STATUSES or status >= 500 or status < 400:
        # Below 400: an error event inside a stream that had started fine (overloaded).
        return RetryableGenerationError(detail)
    return PermanentGenerationError(detail)


def _body_message(error: anthropic.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("type") or ""
            kind = inner.get("type")
            text = f"{kind}: {message}" if kind and message != kind else str(message)
        else:
            text = str(inner)
    elif body:
        text = " ".join(str(body).split())
    else:
        text = str(error)
    return text[:DETAIL_CHARS] or type(error).__name__


def _abandon(stream) -> None:
    """End the open stream from another thread: shut its socket so a blocked read returns."""
    with contextlib.suppress(Exception):
        network = stream.response.extensions["network_stream"]
        network.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):
        stream.close()

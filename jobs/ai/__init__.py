"""AI backends: `anthropic` (the official SDK, streaming) and `offline` (deterministic)."""

from functools import cache

from django.conf import settings

from jobs.ai.base import Backend


@cache
def _backend(name: str) -> Backend:
    if name == "anthropic":
        from jobs.ai.anthropic_backend import AnthropicBackend

        return AnthropicBackend()
    if name == "offline":
        from jobs.ai.offline import OfflineBackend

        return OfflineBackend()
    raise ValueError(f"Unknown AI_BACKEND {name!r}: use 'anthropic' or 'offline'.")


def get_backend() -> Backend:
    return _backend(settings.AI_BACKEND)

"""Skill pricing: exact Decimal arithmetic in USDC, rounded up to the token's base unit."""

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.conf import settings

BASE_UNIT = Decimal("0.000001")  # USDC has 6 decimals
# A conservative estimate for quoting before the run: about four characters a token.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Return an upper-leaning estimate of the tokens in `text`."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def quote(
    *,
    pricing: str,
    price: Decimal | None,
    price_per_1k: Decimal | None,
    min_price: Decimal | None,
    tokens: int,
) -> Decimal:
    """Return the price: the fixed one, or max(min, ceil(tokens / 1000 x rate))."""
    if pricing == "fixed":
        return price
    metered = (Decimal(tokens) * price_per_1k / 1000).quantize(BASE_UNIT, rounding=ROUND_CEILING)
    return max(min_price, metered)


@dataclass(frozen=True)
class ModelSpec:
    """What a model allows and costs the platform (settings.ALLOWED_MODELS)."""

    name: str
    max_output_tokens: int
    cost_per_1k_output: Decimal  # USDC per 1,000 output tokens


def allowed_models() -> dict[str, ModelSpec]:
    return {
        name: ModelSpec(
            name=name,
            max_output_tokens=spec["max_output_tokens"],
            cost_per_1k_output=spec["cost_per_1k_output"],
        )
        for name, spec in settings.ALLOWED_MODELS.items()
    }


def run_cost(*, model: ModelSpec, output_tokens: int) -> Decimal:
    """Return what `output_tokens` of `model` cost the platform, rounded up to a base unit."""
    return (Decimal(output_tokens) * model.cost_per_1k_output / 1000).quantize(
        BASE_UNIT, rounding=ROUND_CEILING
    )

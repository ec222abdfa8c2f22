"""Skill pricing: exact Decimal arithmetic in USDC, rounded up to the token's base unit."""

import math
from decimal import ROUND_CEILING, Decimal

import jsonschema
from django.core.exceptions import ValidationError

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


def check_json_schema(schema: object) -> None:
    """Raise ValidationError unless `schema` is a valid JSON Schema."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValidationError(
            {"json_schema": f"Not a valid JSON schema: {error.message}"}
        ) from error

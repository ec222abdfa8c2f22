"""Conversions between USDC prices (Decimal) and token base units (int). Never floats."""

from decimal import ROUND_CEILING, Decimal

USDC_PLACES = 6


def to_units(price: Decimal, decimals: int) -> int:
    """Return `price` in base units, rounding a fraction of a unit up (never undercharge)."""
    if not isinstance(price, Decimal):
        raise TypeError(f"price must be a Decimal, not {type(price).__name__}")
    return int(price.scaleb(decimals).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int, decimals: int) -> Decimal:
    """Return `units` base units as a Decimal amount of the token."""
    return Decimal(int(units)).scaleb(-decimals)


def format_usdc(price: Decimal) -> str:
    """Return a price for people: two places ("0.75", "1.50"); more only for the digits a
    price really has below a cent ("0.015" per 1,000 tokens), never rounded away."""
    text = f"{price.quantize(Decimal(1).scaleb(-USDC_PLACES)):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_token(units: int, decimals: int) -> str:
    """Return an exact on-chain amount with all of the token's decimals: "5.000037".

    Invoices, payments, refunds and payouts are exact amounts: their last digits matter (an
    invoice's tail identifies its payment), so none is ever trimmed.
    """
    return f"{from_units(units, decimals):.{decimals}f}"

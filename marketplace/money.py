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
    """Return a price for people: at least two places, at most the token's six."""
    text = f"{price.quantize(Decimal(1).scaleb(-USDC_PLACES)):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_token(units: int, decimals: int) -> str:
    """Return an exact on-chain amount with all of the token's decimals: "5.000037"."""
    return f"{from_units(units, decimals):.{decimals}f}"

from decimal import Decimal

from django import template

from marketplace.money import format_token, format_usdc

register = template.Library()


@register.filter
def usdc(value, decimals=None) -> str:
    """Vendo's one money format, for the admin and the pages alike.

    `{{ price|usdc }}`: a price (a Decimal in USDC) to two places, "0.75".
    `{{ units|usdc:decimals }}`: an exact on-chain amount in base units, with all of the
    token's decimals, "0.750042".
    """
    if value is None or value == "":
        return ""
    if decimals is None or decimals == "":
        return format_usdc(Decimal(value))
    return format_token(int(value), int(decimals))


@register.filter
def duration(seconds) -> str:
    """Format an estimated time: "~30 s", "~2 min"."""
    seconds = int(seconds or 0)
    if seconds < 90:
        return f"~{seconds} s"
    return f"~{round(seconds / 60)} min"


@register.filter
def token(units, decimals) -> str:
    """The same as `units|usdc:decimals`, for templates written before usdc took units."""
    return usdc(units, decimals)


@register.filter
def period(seconds) -> str:
    """Format a length of time in whole units: "24 hours", "2 minutes", "3 days"."""
    seconds = int(seconds or 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"

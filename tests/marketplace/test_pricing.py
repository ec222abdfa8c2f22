from decimal import Decimal

import pytest

from marketplace.models import Skill
from marketplace.money import format_usdc, from_units, to_units
from marketplace.pricing import estimate_tokens
from tests.factories import SkillFactory, order

pytestmark = pytest.mark.django_db


def per_token_skill(**kwargs):
    return SkillFactory(
        pricing=Skill.Pricing.PER_1K_TOKENS,
        price=None,
        price_per_1k=kwargs.pop("price_per_1k", Decimal("0.020000")),
        min_price=kwargs.pop("min_price", Decimal("0.100000")),
        max_output_tokens=kwargs.pop("max_output_tokens", 1000),
        **kwargs,
    )


def test_fixed_price_quote_is_the_price_exactly():
    skill = SkillFactory(price=Decimal("1.250000"))
    assert skill.quote("anything at all") == Decimal("1.250000")
    assert skill.quote("x" * 10_000) == Decimal("1.250000")


def test_per_token_quote_charges_input_estimate_plus_max_output():
    skill = per_token_skill(price_per_1k=Decimal("0.500000"), max_output_tokens=1000)
    prompt = "y" * 4000  # 1000 tokens at 4 characters a token
    assert estimate_tokens(prompt) == 1000
    # 2000 tokens x 0.5 per 1k
    assert skill.quote(prompt) == Decimal("1.000000")


def test_per_token_quote_rounds_up_to_the_base_unit():
    skill = per_token_skill(
        price_per_1k=Decimal("0.333333"), max_output_tokens=1000, min_price=Decimal("0")
    )
    # 1001 tokens x 0.333333 / 1000 = 0.333666333 -> 0.333667 (never undercharge)
    assert skill.quote("abcd") == Decimal("0.333667")


def test_per_token_quote_is_never_below_the_minimum():
    skill = per_token_skill(price_per_1k=Decimal("0.020000"), min_price=Decimal("0.250000"))
    assert skill.quote("short") == Decimal("0.250000")


def test_units_conversion_is_exact():
    assert to_units(Decimal("1.234567"), 6) == 1_234_567
    assert to_units(Decimal("0.0000001"), 6) == 1  # a fraction of a unit rounds up
    assert from_units(1_230_042, 6) == Decimal("1.230042")
    assert format_usdc(Decimal("1.500000")) == "1.50"
    assert format_usdc(Decimal("1.230042")) == "1.230042"


def test_units_conversion_refuses_floats():
    with pytest.raises(TypeError):
        to_units(1.5, 6)


def test_invoice_amount_is_quote_in_base_units_plus_a_small_tail():
    skill = per_token_skill(price_per_1k=Decimal("0.500000"), max_output_tokens=1000)
    job = order(skill, prompt="y" * 4000)
    invoice = job.invoice
    assert job.price == Decimal("1.000000")
    assert invoice.token_decimals == 6  # read from the contract
    assert invoice.price_units == 1_000_000
    assert 1 <= invoice.tail_units <= 9999
    assert invoice.amount_units == invoice.price_units + invoice.tail_units
    assert invoice.amount == Decimal(invoice.amount_units) / 10**6

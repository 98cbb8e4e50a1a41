from decimal import Decimal

import pytest

from accounts.domain.errors import InvalidAmount
from accounts.domain.money import MAX_AMOUNT, positive_money, to_money


@pytest.mark.parametrize(
    "given, expected",
    [
        (Decimal("125"), Decimal("125.00")),
        (Decimal("0.1"), Decimal("0.10")),
        (7, Decimal("7.00")),
        ("42.5", Decimal("42.50")),
        (MAX_AMOUNT, Decimal("9999999999999.99")),
    ],
)
def test_exact_amounts_become_two_place_decimals(given, expected):
    amount = to_money(given)
    assert amount == expected
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    "bad, problem",
    [
        (0.1, "float"),
        (True, "float"),
        (Decimal("1.001"), "2 decimal places"),
        ("1.001", "2 decimal places"),
        (Decimal("NaN"), "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("1e3", "plain decimal"),
        (" 3.25 ", "plain decimal"),
        ("1_000", "plain decimal"),
        ("\uff11\uff12", "plain decimal"),
        ("+5", "plain decimal"),
        ("5.", "plain decimal"),
        ("", "plain decimal"),
        ("ten", "number"),
        (None, "number"),
        ([1], "number"),
        (MAX_AMOUNT + Decimal("0.01"), "exceed"),
        ("100000000000000000000", "exceed"),
    ],
)
def test_anything_but_an_exact_sane_amount_is_refused(bad, problem):
    with pytest.raises(InvalidAmount) as refused:
        to_money(bad)
    assert problem in str(refused.value)


@pytest.mark.parametrize("bad", [Decimal("0"), Decimal("0.00"), Decimal("-5"), "-0.01"])
def test_movements_must_be_positive(bad):
    with pytest.raises(InvalidAmount, match=r"greater than 0\.00"):
        positive_money(bad)


def test_the_refused_field_is_named():
    with pytest.raises(InvalidAmount) as refused:
        to_money("x", field="opening_balance")
    assert refused.value.field == "opening_balance"

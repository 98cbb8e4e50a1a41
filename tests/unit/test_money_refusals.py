"""A refused amount names its field and says exactly what is wrong (the API answers `{field: [problem]}`)."""

from decimal import Decimal

import pytest

from accounts.domain.errors import InvalidAmount
from accounts.domain.money import positive_money, to_money


@pytest.mark.parametrize(
    "bad, problem",
    [
        (1.5, "must be an exact decimal number, not a float"),
        (False, "must be an exact decimal number, not a float"),
        ("NaN", "must be a finite number"),
        ("Infinity", "must be a finite number"),
        (Decimal("-Infinity"), "must be a finite number"),
        ("1,5", "must be a plain decimal number such as 125.00"),
        (None, "must be a number"),
        (b"12", "must be a number"),
        ("0.123", "must have at most 2 decimal places"),
        ("10000000000000.00", "must not exceed 9,999,999,999,999.99"),
        ("-10000000000000.00", "must not exceed 9,999,999,999,999.99"),
    ],
)
def test_each_refusal_says_what_is_wrong_under_the_field_it_was_given(bad, problem):
    with pytest.raises(InvalidAmount) as refused:
        to_money(bad, field="opening_balance")
    assert (refused.value.field, refused.value.problem) == ("opening_balance", problem)


def test_without_a_field_name_the_refused_field_is_the_amount():
    with pytest.raises(InvalidAmount) as refused:
        to_money("ten")
    assert refused.value.field == "amount"
    with pytest.raises(InvalidAmount) as refused:
        positive_money("ten")
    assert refused.value.field == "amount"


@pytest.mark.parametrize(
    "bad, problem",
    [("0.00", "must be greater than 0.00"), ("ten", "must be a plain decimal number such as 125.00")],
)
def test_a_refused_movement_names_the_field_it_was_given(bad, problem):
    with pytest.raises(InvalidAmount) as refused:
        positive_money(bad, field="deposit")
    assert (refused.value.field, refused.value.problem) == ("deposit", problem)


def test_the_smallest_movement_is_one_cent():
    assert positive_money("0.01") == Decimal("0.01")

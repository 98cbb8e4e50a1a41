"""Money is a Decimal quantized to cents; floats never get in."""

import re
from decimal import Decimal

from accounts.domain.errors import InvalidAmount

CENT = Decimal("0.01")
MAX_DIGITS = 15
MAX_AMOUNT = Decimal(10) ** (MAX_DIGITS - 2) - CENT  # 9,999,999,999,999.99
# What a person writes: ASCII digits, an optional sign and point. Not "1_000",
# not full-width digits, not "1e3" (which Decimal() would all take).
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def to_money(value: object, *, field: str = "amount") -> Decimal:
    """Return `value` as a Decimal with two places, or raise InvalidAmount.

    Accepts Decimal, int and numeric strings. Floats are refused: by the time a
    float exists the cents may already be wrong.
    """
    if isinstance(value, (bool, float)):
        raise InvalidAmount(field, "must be an exact decimal number, not a float")
    if isinstance(value, str):
        if value in ("NaN", "Infinity", "-Infinity"):
            raise InvalidAmount(field, "must be a finite number")
        if not PLAIN_DECIMAL.fullmatch(value):
            raise InvalidAmount(field, "must be a plain decimal number such as 125.00")
    if not isinstance(value, (Decimal, int, str)):
        raise InvalidAmount(field, "must be a number")
    amount = Decimal(value)  # cannot fail: a Decimal, an int or a plain decimal string
    if not amount.is_finite():
        raise InvalidAmount(field, "must be a finite number")
    exponent = int(amount.as_tuple().exponent)  # an int for every finite number (a letter only for NaN, infinities)
    if exponent < -2:
        raise InvalidAmount(field, "must have at most 2 decimal places")
    if abs(amount) > MAX_AMOUNT:
        raise InvalidAmount(field, f"must not exceed {MAX_AMOUNT:,}")
    return amount.quantize(CENT)


def positive_money(value: object, *, field: str = "amount") -> Decimal:
    amount = to_money(value, field=field)
    if amount <= 0:
        raise InvalidAmount(field, "must be greater than 0.00")
    return amount

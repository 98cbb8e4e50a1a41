"""Waiting in tests: on the condition itself, never for a fixed time.

The deadline only bounds a hang; it is generous because a loaded CI machine
may be slow, and a test that waits for its condition costs no more for it.
"""

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, seconds: float, failure: Callable[[], str] | str, every: float = 0.01
) -> T:
    """The first truthy value of `condition()`, polled every `every` seconds; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(failure() if callable(failure) else failure, pytrace=False)
        time.sleep(every)
    return value

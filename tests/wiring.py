"""Tests that change the settings, or hand in parts of their own, install fresh services for the entry points."""

from typing import Any

from bootstrap import Services, bootstrap
from entrypoints.wiring import install


def rewire(**given: Any) -> Services:
    """Build the services anew from the settings as they are now (with `given` parts), and install them."""
    return install(bootstrap(**given))


class CallOnNudge:
    """Relay nudges that call `wake` in the nudging thread, instead of waking a relay process through Redis."""

    def __init__(self, wake=lambda: None):
        self.wake = wake

    def nudge(self) -> None:
        self.wake()

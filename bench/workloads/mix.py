"""The command mix workloads 1 and 2 share: open K accounts, then N deposits and withdrawals.

Deterministic for a seed, so every subject (TechBank on each backend, the raw
drivers, the eventsourcing library, the HTTP clients) runs the same commands.
Withdrawals are small against the opening balances (at most 100.00 against at
least 5,000.00), so none is refused for lack of funds in any order: the HTTP
runs send the mix three times over, from concurrent clients.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import NamedTuple

SEED = 20261126


class Op(NamedTuple):
    kind: str  # "open" | "deposit" | "withdraw"
    account: int  # index into the accounts opened
    cents: int


def cents_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def opens(accounts: int, seed: int = SEED) -> list[Op]:
    rng = random.Random(seed)
    return [Op("open", i, rng.randint(500_000, 1_000_000)) for i in range(accounts)]


def moves(accounts: int, commands: int, seed: int = SEED) -> Iterator[Op]:
    rng = random.Random(seed + 1)
    for _ in range(commands):
        account = rng.randrange(accounts)
        if rng.random() < 0.45:
            yield Op("withdraw", account, rng.randint(100, 10_000))
        else:
            yield Op("deposit", account, rng.randint(100, 50_000))


def mix(accounts: int, commands: int, seed: int = SEED) -> list[Op]:
    """The opens, then the moves: what one in-process run executes, in order."""
    return opens(accounts, seed) + list(moves(accounts, commands, seed))

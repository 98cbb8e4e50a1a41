"""Fill a throwaway database with N valid events over K accounts, then project them.

For measuring the operations that read the whole event store (verify_read_model,
rebuild_read_model). The events go straight into the SQL event store's table
with bulk inserts (not through the command bus: a million commands would take
hours), but they are what the bank would have stored: each account opens, then
deposits and withdrawals that never take its balance below zero, accounts
interleaved in one global order. They are not in the outbox (as if published).
Then `rebuild_read_model` projects them, so the read model matches.

    DATABASE_URL=sqlite:////tmp/techbank-bench-1m.sqlite3 \\
        .venv/bin/python bench/seed_events.py --events 1000000 --accounts 10000

The database must be new (or its event store empty): this refuses to add to one.
"""

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BATCH_SIZE = 10_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def _decimal_string(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def synthetic_events(*, events: int, accounts: int, seed: int):
    """(stream_id, version, event_type, data, occurred_at) in global order, deterministic for a seed."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(accounts)]
    versions = [0] * accounts
    balances = [0] * accounts  # cents
    for n in range(events):
        # The first K events open every account; after that, any account may move money.
        a = n if n < accounts else rng.randrange(accounts)
        occurred_at = START + timedelta(milliseconds=n)
        versions[a] += 1
        if versions[a] == 1:
            balances[a] = rng.randint(0, 500_000)
            data = {
                "holder": f"Bench Holder {a}",
                "account_type": "SAVINGS" if a % 2 else "CURRENT",
                "opening_balance": _decimal_string(balances[a]),
            }
            yield ids[a], 1, "AccountOpened", data, occurred_at
            continue
        if balances[a] > 0 and rng.random() < 0.45:
            cents = rng.randint(1, balances[a])
            balances[a] -= cents
            event_type = "FundsWithdrawn"
        else:
            cents = rng.randint(1, 200_000)
            balances[a] += cents
            event_type = "FundsDeposited"
        yield ids[a], versions[a], event_type, {"amount": _decimal_string(cents)}, occurred_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--no-rebuild", action="store_true", help="Leave the read model empty.")
    args = parser.parse_args()
    if args.events < args.accounts:
        parser.error("--events must be at least --accounts (every account has its opening)")
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL to a throwaway database, e.g. sqlite:////tmp/techbank-bench.sqlite3")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "techbank_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from tqdm import tqdm

    from entrypoints.wiring import services
    from eventstore.models import StoredEventRecord
    from projections.rebuild import rebuild_read_model

    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:  # a throwaway database: no need to survive a power cut
            cursor.execute("PRAGMA synchronous=OFF")
    if StoredEventRecord.objects.exists():
        sys.exit("The event store is not empty: seed a new database.")

    started = time.monotonic()
    metadata = {"issued_by": "bench", "correlation_id": "bench-seed"}
    rng = random.Random(args.seed + 1)
    batch = []
    with tqdm(total=args.events, unit="event", desc="Seeding", file=sys.stderr) as bar:
        for stream_id, version, event_type, data, occurred_at in synthetic_events(
            events=args.events, accounts=args.accounts, seed=args.seed
        ):
            batch.append(
                StoredEventRecord(
                    event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    stream_id=stream_id,
                    version=version,
                    event_type=event_type,
                    data=data,
                    metadata=metadata,
                    occurred_at=occurred_at,
                )
            )
            if len(batch) == BATCH_SIZE:
                with transaction.atomic():
                    StoredEventRecord.objects.bulk_create(batch)
                bar.update(len(batch))
                batch.clear()
        with transaction.atomic():
            StoredEventRecord.objects.bulk_create(batch)
        bar.update(len(batch))
    print(f"seeded {args.events} events over {args.accounts} accounts in {time.monotonic() - started:.1f} s")

    if not args.no_rebuild:
        started = time.monotonic()
        store = services().event_store
        with tqdm(total=args.events, unit="event", desc="Projecting", file=sys.stderr) as bar:
            events, accounts = rebuild_read_model(event_store=store, on_progress=bar.update)
        print(f"projected {events} events into {accounts} accounts in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()

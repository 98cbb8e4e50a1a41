"""Verifying the read model against the event store: every account, every ledger row.

The store is replayed in memory (projections.replay); each account's summary
is compared field by field, and its ledger through a digest of every row
(version, event id, kind, amount, balance after it, when it occurred),
computed by the same function from the replay and from the read model's rows.
A row changed anywhere in a ledger changes the digest. An account whose
read model waits behind a pending dead letter differs too: it is not what
the store says, even though the projection stopped where it had to.
"""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from django.db.models import CharField, Q
from django.db.models.functions import Cast

from eventstore.store import EventStore
from projections import dead_letters
from projections.adapters.read_model_writer import SUMMARY_FIELDS
from projections.models import AccountSummary, DeadLetter, DeadLetterStatus, LedgerEntry
from projections.replay import REPLAY_BATCH_SIZE, Replay

DIGESTED_COLUMNS = ("version", "event_id", "kind", "amount", "balance_after", "occurred_at")
# The ledger's ids as text (32 hex digits; MariaDB's native uuid type: 36, with dashes): making a UUID
# of each of a million rows' ids cost more than the rest.
ID_TEXT = CharField(max_length=36)


@dataclass(frozen=True)
class AccountDifference:
    account_id: str
    reasons: list[str] = field(default_factory=list)


def ledger_row_fingerprint(version, event_hex: str, kind, amount, balance_after, occurred_at: datetime) -> bytes:
    """One ledger row as bytes, the same whether it comes from a replay or from the database."""
    return (
        f"{version}|{event_hex}|{kind}|{_cents(amount)}|{_cents(balance_after)}|"
        f"{occurred_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}\n"
    ).encode()


def _cents(amount: Decimal) -> str:
    text = f"{amount:.2f}"
    return "0.00" if text == "-0.00" else text


class _LedgerDigest:
    """A running digest of one account's ledger rows, fed in version order."""

    __slots__ = ("digest", "entries")

    def __init__(self):
        self.entries = 0
        self.digest = hashlib.sha256()

    def add(self, *row) -> None:
        self.entries += 1
        self.digest.update(ledger_row_fingerprint(*row))

    def result(self) -> tuple[int, bytes]:
        return self.entries, self.digest.digest()


def read_model_differences(
    *, event_store: EventStore, on_progress: Callable[[int], None] = lambda n: None
) -> Iterator[AccountDifference]:
    """Every account whose read model differs from a fresh replay of the event store, with why; sorted by id.

    Memory grows with the number of accounts, not events: the store and the
    ledger are read in batches. `on_progress` is told how many more events were
    replayed, a batch at a time. Meant for a quiet read model: on a live one,
    an account changed while it runs may be reported.
    """
    replay = Replay()
    expected_ledgers: dict[UUID, _LedgerDigest] = {}
    for entries, replayed in replay.batches(event_store):
        _digest_rows(expected_ledgers, entries)
        on_progress(replayed)
    _digest_rows(expected_ledgers, replay.fill_gaps(event_store))

    summaries = {str(row[0]): row[1:] for row in AccountSummary.objects.values_list("id", *SUMMARY_FIELDS)}
    ledgers = _read_model_ledger_digests()
    stuck = _stuck_behind_dead_letters(summaries)
    for stream_id in sorted(replay.summaries.keys() | summaries.keys() | ledgers.keys()):
        want = replay.summaries.get(stream_id)
        reasons = _read_model_reasons(
            stream_id, want, summaries.get(stream_id), ledgers.get(stream_id), expected_ledgers
        )
        if want is not None and stream_id in stuck:
            count, first_version = stuck[stream_id]
            reasons.append(
                f"stuck behind {count} pending dead letter{'s' if count > 1 else ''} "
                f"from version {first_version} (see Dead letters)"
            )
        if reasons:
            yield AccountDifference(stream_id, reasons)


def _digest_rows(digests: dict[UUID, _LedgerDigest], entries) -> None:
    for entry in entries:
        digest = digests.get(entry.account_id)
        if digest is None:
            digest = digests[entry.account_id] = _LedgerDigest()
        digest.add(entry.version, entry.event_id.hex, entry.kind, entry.amount, entry.balance_after, entry.occurred_at)


def _read_model_reasons(stream_id, want, have_summary, have_ledger, expected_ledgers) -> list[str]:
    if want is None or want.version == 0:  # no events, or its opening cannot be applied: no read model
        if have_summary is None and have_ledger is None:
            return []
        return [
            "not in the event store" if want is None else "in the read model, but its opening event cannot be applied"
        ]
    if have_summary is None and have_ledger is None:
        return ["missing from the read model"]
    reasons = []
    expected_summary = tuple(getattr(want, name) for name in SUMMARY_FIELDS)
    if have_summary is None:
        reasons.append("summary missing")
    elif have_summary != expected_summary:
        differing = [
            name
            for name, have, expected in zip(SUMMARY_FIELDS, have_summary, expected_summary, strict=True)
            if have != expected
        ]
        reasons.append(f"summary differs: {', '.join(differing)}")
    expected_entries, expected_digest = expected_ledgers[want.id].result()
    entries, digest = have_ledger or (0, b"")
    if entries != expected_entries:
        reasons.append(f"ledger differs: {entries} entries, the events give {expected_entries}")
    elif digest != expected_digest:
        reasons.append("ledger differs: an entry does not match its event")
    return reasons


def _read_model_ledger_digests() -> dict[str, tuple[int, bytes]]:
    """(entries, digest) of every account's ledger in the read model.

    Read a batch at a time in (account, version) order."""
    digests: dict[str, tuple[int, bytes]] = {}
    rows = (
        LedgerEntry.objects.order_by("account_id", "version")
        .annotate(account_text=Cast("account_id", ID_TEXT), event_text=Cast("event_id", ID_TEXT))
        .values_list("account_text", "version", "event_text", "kind", "amount", "balance_after", "occurred_at")
    )
    account_id, digest, after = None, None, None
    while True:
        page = (
            rows
            if after is None
            else rows.filter(Q(account_id__gt=after[0]) | Q(account_id=after[0], version__gt=after[1]))
        )
        batch = list(page[:REPLAY_BATCH_SIZE])
        for row in batch:
            if row[0] != account_id or digest is None:  # (digest is None only before the first row)
                if digest is not None:
                    digests[str(UUID(account_id))] = digest.result()
                account_id, digest = row[0], _LedgerDigest()
            version, event_text, *rest = row[1:]
            digest.add(version, event_text.replace("-", "").lower(), *rest)
        if len(batch) < REPLAY_BATCH_SIZE:
            break
        after = (UUID(batch[-1][0]), batch[-1][1])
    if digest is not None:
        digests[str(UUID(account_id))] = digest.result()
    return digests


def _stuck_behind_dead_letters(summaries: dict[str, tuple]) -> dict[str, tuple[int, int]]:
    """Accounts whose read model waits behind pending dead letters: (how many, the first version)."""
    version_index = SUMMARY_FIELDS.index("version")
    pending = (
        DeadLetter.objects.filter(status=DeadLetterStatus.PENDING, account_id__isnull=False, version__isnull=False)
        .exclude(reason_type=dead_letters.UNDECODABLE)  # their account and version are only what the bytes claimed
        .values("account_id", "version")
    )
    stuck: dict[str, tuple[int, int]] = {}
    for letter in pending:
        stream_id = str(letter["account_id"])
        summary = summaries.get(stream_id)
        if letter["version"] <= (summary[version_index] if summary else 0):
            continue  # applied since (a rebuild, or the gap filled from the store)
        count, first_version = stuck.get(stream_id, (0, letter["version"]))
        stuck[stream_id] = (count + 1, min(first_version, letter["version"]))
    return stuck

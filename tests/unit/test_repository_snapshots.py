"""Loading an account from its snapshot and the events after it, never trusting a stale or broken one;
snapshots written after a save (through the unit of work), never while loading."""

import logging
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.adapters.repository import BankAccountRepository, aggregate_schema
from accounts.adapters.unit_of_work import EventStoreUnitOfWork
from accounts.domain import commands
from accounts.domain.bank_account import BankAccount
from accounts.service_layer.command_bus import CommandBus
from accounts.service_layer.publisher import EventPublisher
from eventstore.backends.memory import InMemoryEventStore, InMemorySnapshotStore
from eventstore.snapshots import Snapshot, SnapshotStore
from tests.aggregate_code import REPLAY_CODE, edit_aggregate_code  # noqa: F401 (fixture)
from tests.delegating_store import DelegatingEventStore

EVERY = 10


class CountingEventStore(DelegatingEventStore):
    """The in-memory store, noting which versions each load_stream read."""

    def __init__(self):
        super().__init__(InMemoryEventStore())
        self.loads: list[list[int]] = []
        self.after_next_load = None  # something another process does between this load and its caller's next step
        self.after_next_append = None  # ... between this append and its caller's next step

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        events = super().load_stream(stream_id, after_version, limit=limit)
        self.loads.append([e.version for e in events])
        if meanwhile := self.after_next_load:
            self.after_next_load = None
            meanwhile()
        return events

    def append(self, stream_id, expected_version, events):
        stored = super().append(stream_id, expected_version, events)
        if meanwhile := self.after_next_append:
            self.after_next_append = None
            meanwhile()
        return stored


class BrokenSnapshotStore(SnapshotStore):
    def get(self, stream_id):
        raise ConnectionError("snapshot store unreachable")

    def save(self, snapshot):
        raise ConnectionError("snapshot store unreachable")

    def delete(self, stream_id):
        raise ConnectionError("snapshot store unreachable")


class NoPublisher(EventPublisher):
    def publish(self, events):
        pass


@pytest.fixture
def events():
    return CountingEventStore()


@pytest.fixture
def snapshots():
    return InMemorySnapshotStore()


def repository(events, snapshots, **kwargs) -> BankAccountRepository:
    return BankAccountRepository(events, snapshots, snapshot_every=EVERY, **kwargs)


def account_of(repo: BankAccountRepository, deposits: int) -> BankAccount:
    """An account opened with 1.00, then `deposits` deposits of 1.00, each stored as a command would store it."""
    account = BankAccount.open(account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance="1.00")
    uow = EventStoreUnitOfWork(repo)
    with uow:
        uow.accounts.add(account)
        uow.commit()
    for _ in range(deposits):
        deposit(repo, account.id)
    return account


def deposit(repo: BankAccountRepository, account_id) -> BankAccount:
    """One deposit of 1.00, loaded and saved through a unit of work of its own (as a new process would)."""
    uow = EventStoreUnitOfWork(repo)
    with uow:
        account = uow.accounts.get(account_id)
        account.deposit("1.00")
        uow.commit()
    return account


def replayed(events: CountingEventStore, account_id) -> BankAccount:
    return BankAccountRepository(events).get(account_id)


def state(account: BankAccount) -> dict:
    return {name: value for name, value in vars(account).items() if name != "pending_events"}


def test_loading_never_writes_a_snapshot_even_of_a_long_stream(events, snapshots):
    account = account_of(repository(events, None), deposits=24)  # 25 events, no snapshot
    repository(events, snapshots).get(account.id)
    assert snapshots.get(str(account.id)) is None


def test_a_load_that_finds_no_snapshot_of_a_long_stream_leads_to_one_after_the_next_save(events, snapshots):
    account = account_of(repository(events, None), deposits=24)
    deposit(repository(events, snapshots), account.id)
    assert snapshots.get(str(account.id)).version == 26


def test_a_snapshot_is_stored_each_time_the_stream_grows_by_the_configured_number_of_events(events, snapshots):
    repo = repository(events, snapshots)
    account = account_of(repo, deposits=8)
    assert snapshots.get(str(account.id)) is None  # 9 events: not yet
    account_of_25 = account_of(repo, deposits=24)
    assert snapshots.get(str(account_of_25.id)).version == 20


def test_loading_reads_only_the_events_from_the_snapshot_on(events, snapshots):
    account = account_of(repository(events, snapshots), deposits=24)  # 25 events, snapshot at 20
    events.loads.clear()
    loaded = repository(events, snapshots).get(account.id)
    assert events.loads == [[20, 21, 22, 23, 24, 25]]  # the snapshot's own last event, to check it is there
    assert state(loaded) == state(replayed(events, account.id))
    assert loaded.balance == Decimal("25.00") and loaded.version == 25


def test_without_a_snapshot_store_every_load_replays_the_whole_stream(events, snapshots):
    account = account_of(repository(events, snapshots), deposits=24)
    events.loads.clear()
    BankAccountRepository(events).get(account.id)
    BankAccountRepository(events, snapshots, snapshot_every=0).get(account.id)
    assert events.loads == [list(range(1, 26))] * 2


def test_the_fingerprint_changes_when_any_code_a_replay_runs_changes(edit_aggregate_code):  # noqa: F811 (fixture)
    before = aggregate_schema()
    for module in REPLAY_CODE:
        edit_aggregate_code(module)
        after = aggregate_schema()
        assert after != before, f"an edit of {module.__name__} left the fingerprint as it was"
        before = after


def test_the_fingerprint_is_the_same_in_a_new_process_running_the_same_code():
    # Else no snapshot would survive a restart: each process would find every one "from other code".
    other_process = subprocess.run(
        [sys.executable, "-c", "from accounts.adapters.repository import aggregate_schema; print(aggregate_schema())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert other_process.stdout.strip() == aggregate_schema()


def test_by_default_snapshots_carry_the_fingerprint_of_the_aggregates_code(events, snapshots):
    repo = BankAccountRepository(events, snapshots, snapshot_every=EVERY)
    account = account_of(repo, deposits=10)
    assert snapshots.get(str(account.id)).schema == aggregate_schema() == repo.schema


def test_a_snapshot_written_before_the_aggregates_code_changed_is_not_trusted_but_replaced(
    events,
    snapshots,
    edit_aggregate_code,  # noqa: F811 (fixture)
):
    old_code = BankAccountRepository(events, snapshots, snapshot_every=EVERY)
    account = account_of(old_code, deposits=24)  # 25 events, a snapshot at 20
    # What the old code made of the first 20 events: say it counted them differently. A well-formed
    # snapshot, so only its fingerprint can tell the new code not to trust it.
    written = snapshots.get(str(account.id))
    snapshots._snapshots[str(account.id)] = replace(written, state={**written.state, "balance": "1000.00"})
    assert BankAccountRepository(events, snapshots, snapshot_every=EVERY).get(account.id).balance == Decimal("1005.00")

    edit_aggregate_code()  # a new release: the code that replays events changed
    new_code = BankAccountRepository(events, snapshots, snapshot_every=EVERY)
    events.loads.clear()
    loaded = new_code.get(account.id)
    assert events.loads == [list(range(1, 26))]  # a full replay: the old snapshot was not used
    assert loaded.balance == Decimal("25.00") and loaded.version == 25
    deposit(new_code, account.id)  # the next save replaces it
    replacement = snapshots.get(str(account.id))
    assert (replacement.schema, replacement.version, replacement.state["balance"]) == (aggregate_schema(), 26, "26.00")
    assert replacement.schema != written.schema
    events.loads.clear()
    assert BankAccountRepository(events, snapshots, snapshot_every=EVERY).get(account.id).balance == Decimal("26.00")
    assert events.loads == [[26]]  # the new code trusts its own snapshot


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: replace(s, state={**s.state, "balance": "a lot"}),
        lambda s: replace(s, state={**s.state, "version": s.version + 1}),
        lambda s: replace(s, state={}),
        lambda s: replace(s, version=99, state={**s.state, "version": 99}),  # ahead of its stream
    ],
    ids=["bad balance", "versions disagree", "empty", "ahead of the stream"],
)
def test_a_corrupt_snapshot_is_ignored_and_replaced(events, snapshots, corrupt, caplog):
    account = account_of(repository(events, snapshots), deposits=24)
    good = snapshots.get(str(account.id))
    snapshots._snapshots[str(account.id)] = corrupt(good)
    repo = repository(events, snapshots)
    events.loads.clear()
    with caplog.at_level(logging.WARNING, logger="accounts.adapters.repository"):
        loaded = repo.get(account.id)
    assert f"The snapshot of account {account.id} is corrupt" in caplog.text
    assert events.loads[-1] == list(range(1, 26))  # ignored: the whole stream replayed
    assert state(loaded) == state(replayed(events, account.id))
    deposit(repo, account.id)  # the account stays writable
    # Replaced, after that save, by the account at version 26, spelled out here rather than
    # made by to_snapshot() (which would then be checked against itself).
    opened_at = events.inner.load_stream(str(account.id))[0].occurred_at
    assert snapshots.get(str(account.id)) == Snapshot(
        str(account.id),
        26,
        repo.schema,
        {
            "version": 26,
            "holder": "Ada",
            "account_type": "SAVINGS",
            "balance": "26.00",
            "is_closed": False,
            "opened_at": opened_at.isoformat(),
            "closed_at": None,
            "handled_requests": [],
        },
    )
    events.loads.clear()
    assert repository(events, snapshots).get(account.id).balance == Decimal("26.00")
    assert events.loads == [[26]]  # from the replacement


def test_a_snapshot_store_that_fails_never_fails_a_command(events, caplog):
    bus = CommandBus(uow=EventStoreUnitOfWork(repository(events, BrokenSnapshotStore())), publisher=NoPublisher())
    account = bus.handle(commands.OpenAccount(holder="Ada", account_type="SAVINGS", opening_balance="0.00"))
    with caplog.at_level(logging.WARNING, logger="accounts.adapters.repository"):
        for _ in range(3 * EVERY):
            bus.handle(commands.DepositFunds(account_id=account.id, amount="1.00"))
    assert replayed(events, account.id).balance == Decimal("30.00")
    assert "Could not save a snapshot" in caplog.text and "Could not read the snapshot" in caplog.text


def test_a_later_snapshot_is_not_replaced_by_an_older_account_saved_after_it(events, snapshots):
    """Two processes: A saves an account, B moves it on and snapshots it, then A's snapshot comes last."""
    account = account_of(repository(events, None), deposits=24)  # 25 events, no snapshot yet
    process_a, process_b = repository(events, snapshots), repository(events, snapshots)

    def process_b_deposits_until_it_snapshots():
        for _ in range(EVERY):
            deposit(process_b, account.id)
        assert snapshots.get(str(account.id)).version == 27  # its first save after a load with none

    events.after_next_append = process_b_deposits_until_it_snapshots  # right after A's append, before its snapshot
    older = deposit(process_a, account.id)  # saved at 26, snapshotted after B's
    assert older.version == 26
    assert snapshots.get(str(account.id)).version == 27
    assert snapshots.get(str(account.id)).state["balance"] == "27.00"
    events.loads.clear()
    assert repository(events, snapshots).get(account.id).balance == Decimal("36.00")
    assert events.loads == [list(range(27, 37))]


def keyed(key: str, since=None) -> commands.CommandMetadata:
    return commands.CommandMetadata(issued_by="teller", correlation_id="c", idempotency_key=key, idempotent_since=since)


def test_a_request_repeated_after_a_snapshot_has_no_second_effect(events, snapshots):
    bus = CommandBus(uow=EventStoreUnitOfWork(repository(events, snapshots)), publisher=NoPublisher())
    account = bus.handle(
        commands.OpenAccount(holder="Ada", account_type="SAVINGS", opening_balance="0.00", metadata=keyed("open"))
    )
    first = datetime.now(UTC)
    bus.handle(commands.DepositFunds(account_id=account.id, amount="5.00", metadata=keyed("k-1")))
    for n in range(3 * EVERY):
        bus.handle(commands.DepositFunds(account_id=account.id, amount="1.00", metadata=keyed(f"other-{n}")))
    assert snapshots.get(str(account.id)).version == 30
    events.loads.clear()
    for bus_now in (bus, CommandBus(uow=EventStoreUnitOfWork(repository(events, snapshots)), publisher=NoPublisher())):
        bus_now.handle(commands.DepositFunds(account_id=account.id, amount="5.00", metadata=keyed("k-1", since=first)))
        again = bus_now.handle(
            commands.OpenAccount(holder="Ada", account_type="SAVINGS", opening_balance="0.00", metadata=keyed("open"))
        )
        assert again.id == account.id
    assert all(loaded[0] == 30 for loaded in events.loads)  # from the snapshot
    assert replayed(events, account.id).balance == Decimal("35.00")
    # Past its time to live the key is a new request, as without snapshots.
    later = datetime.now(UTC) + timedelta(seconds=1)
    bus.handle(commands.DepositFunds(account_id=account.id, amount="5.00", metadata=keyed("k-1", since=later)))
    assert replayed(events, account.id).balance == Decimal("40.00")


def test_snapshots_leave_out_expired_idempotency_keys_but_keep_live_ones(events, snapshots):
    uow = EventStoreUnitOfWork(repository(events, snapshots, idempotency_ttl=timedelta(hours=24)))
    bus = CommandBus(uow=uow, publisher=NoPublisher())
    account = bus.handle(
        commands.OpenAccount(holder="Ada", account_type="SAVINGS", opening_balance="0.00", metadata=keyed("open"))
    )
    with uow:  # a deposit keyed two days ago, then live keyed ones up to a snapshot
        stale = uow.accounts.get(account.id)
        stale.deposit("1.00", metadata=keyed("two-days-old"))
        stale.pending_events = [
            replace(e, metadata=replace(e.metadata, occurred_at=e.occurred_at - timedelta(days=2)))
            for e in stale.pending_events
        ]
        uow.commit()
    for n in range(EVERY):
        bus.handle(commands.DepositFunds(account_id=account.id, amount="1.00", metadata=keyed(f"live-{n}")))
    kept = {key for _, key, _ in snapshots.get(str(account.id)).state["handled_requests"]}
    assert "two-days-old" not in kept and {"open", "live-0"} <= kept
    since = datetime.now(UTC) - timedelta(hours=24)
    restored = repository(events, snapshots).load(account.id).handled
    assert restored.has_handled("teller", "live-0", since=since)
    assert not restored.has_handled("teller", "two-days-old", since=since)


def test_the_composition_root_configures_snapshots_from_settings(settings):
    from entrypoints.wiring import services
    from tests.wiring import rewire

    settings.TECHBANK_EVENT_STORE = "sql"
    settings.TECHBANK_SNAPSHOT_EVERY = 7
    rewire()
    try:
        repo = services().bus.uow.repository
        assert repo.snapshot_every == 7 and repo.snapshots is services().snapshot_store
        assert repo.idempotency_ttl == timedelta(hours=settings.TECHBANK_IDEMPOTENCY_TTL_HOURS)
        assert repo.event_store is services().event_store
    finally:
        rewire()


def test_a_snapshot_whose_handled_requests_are_corrupt_is_ignored_so_no_keyed_retry_moves_money_twice(
    events, snapshots, caplog
):
    repo = repository(events, snapshots)
    account = account_of(repo, deposits=EVERY)  # a snapshot at 10
    good = snapshots.get(str(account.id))
    snapshots._snapshots[str(account.id)] = replace(
        good, state={**good.state, "handled_requests": [["teller", "k-1", None]]}
    )
    with caplog.at_level(logging.WARNING, logger="accounts.adapters.repository"):
        loaded = repo.load(account.id)
    assert "a handled request has no time" in caplog.text
    assert loaded.snapshot_version == 0 and loaded.account.version == 11

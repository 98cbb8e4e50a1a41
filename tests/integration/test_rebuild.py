"""The read model is derived data: a rebuild from the event store gives it back exactly."""

import random
import threading
import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from entrypoints.wiring import services
from projections.models import AccountSummary, LedgerEntry
from projections.projection import project_deliveries
from projections.verification import read_model_differences
from tests.deliveries import deliveries_of

pytestmark = pytest.mark.django_db(transaction=True)


def differing_accounts() -> list[str]:
    return [difference.account_id for difference in read_model_differences(event_store=services().event_store)]


def read_model_snapshot():
    summaries = sorted(
        AccountSummary.objects.values_list(
            "id", "holder", "account_type", "balance", "status", "opened_at", "closed_at", "version"
        )
    )
    ledger = sorted(
        LedgerEntry.objects.values_list(
            "account_id", "version", "event_id", "kind", "amount", "balance_after", "occurred_at"
        )
    )
    return summaries, ledger


@pytest.fixture
def busy_bank(api):
    rng = random.Random(7)
    for n in range(12):
        account = api.post(
            "/api/accounts/",
            {
                "holder": f"holder {n % 5}",
                "account_type": rng.choice(["SAVINGS", "CURRENT"]),
                "opening_balance": "50.00",
            },
            format="json",
        ).json()
        for _ in range(rng.randint(0, 6)):
            action = rng.choice(["deposits", "withdrawals"])
            api.post(
                f"/api/accounts/{account['id']}/{action}",
                {"amount": f"{rng.randint(1, 4000) / 100:.2f}"},
                format="json",
            )
        if n % 4 == 0:
            api.post(f"/api/accounts/{account['id']}/close")


def test_a_rebuild_gives_the_same_read_model_as_live_projection(busy_bank):
    live = read_model_snapshot()
    assert len(live[0]) == 12
    call_command("rebuild_read_model", "--no-progress", stdout=StringIO())
    assert read_model_snapshot() == live
    assert list(read_model_differences(event_store=services().event_store)) == []


def test_rebuild_restores_a_damaged_read_model_and_reports_what_it_replayed(busy_bank):
    live = read_model_snapshot()
    total_events = services().event_store.count_events()
    AccountSummary.objects.filter(holder="holder 1").update(balance="999999.99")
    LedgerEntry.objects.filter(kind="DEPOSIT").delete()
    assert list(read_model_differences(event_store=services().event_store))

    out, err = StringIO(), StringIO()
    call_command("rebuild_read_model", stdout=out, stderr=err)

    assert read_model_snapshot() == live
    assert f"replayed {total_events} events into 12 accounts" in out.getvalue()
    assert "Replaying" in err.getvalue() and f"{total_events}/{total_events}" in err.getvalue()


def test_projecting_the_same_events_twice_changes_nothing(busy_bank):
    live = read_model_snapshot()
    everything = list(services().event_store.read_all())
    assert project_deliveries(deliveries=deliveries_of(everything), event_store=services().event_store).applied == 0
    assert read_model_snapshot() == live


def test_events_projected_out_of_order_fill_the_gap_from_the_store(api):
    account = api.post(
        "/api/accounts/", {"holder": "Gap", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()
    for _ in range(3):
        api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "1.00"}, format="json")
    store = services().event_store
    AccountSummary.objects.all().delete()
    LedgerEntry.objects.all().delete()
    latest = store.load_stream(account["id"])[-1]
    assert project_deliveries(deliveries=deliveries_of([latest]), event_store=store).applied == 4
    assert AccountSummary.objects.get(id=account["id"]).balance == 4
    assert LedgerEntry.objects.count() == 4


def test_verify_read_model_passes_on_a_true_read_model_and_names_a_damaged_account(busy_bank):
    out = StringIO()
    call_command("verify_read_model", stdout=out)
    assert "matches" in out.getvalue()

    damaged = AccountSummary.objects.order_by("id").first()
    AccountSummary.objects.filter(id=damaged.id).update(balance="0.01")
    out = StringIO()
    with pytest.raises(CommandError, match="1 account"):
        call_command("verify_read_model", stdout=out)
    assert f"differs: {damaged.id}" in out.getvalue()


def _account_with_the_longest_ledger() -> str:
    return str(
        LedgerEntry.objects.values_list("account_id", flat=True).annotate(n=Count("pk")).order_by("-n", "account_id")[0]
    )


def _lose_an_entry_in_the_middle(account_id):
    versions = list(LedgerEntry.objects.filter(account_id=account_id).values_list("version", flat=True))
    LedgerEntry.objects.filter(account_id=account_id, version=versions[len(versions) // 2]).delete()


def _change_the_last_balance(account_id):
    last = LedgerEntry.objects.filter(account_id=account_id).order_by("-version")[0]
    LedgerEntry.objects.filter(pk=last.pk).update(balance_after=last.balance_after + 1)


def _add_an_entry_after_the_last(account_id):
    last = LedgerEntry.objects.filter(account_id=account_id).order_by("-version")[0]
    LedgerEntry.objects.create(
        account_id=account_id,
        version=last.version + 1,
        event_id=uuid.uuid4(),
        kind="DEPOSIT",
        amount=1,
        balance_after=last.balance_after + 1,
        occurred_at=last.occurred_at,
    )


@pytest.mark.parametrize(
    "damage", [_lose_an_entry_in_the_middle, _change_the_last_balance, _add_an_entry_after_the_last]
)
def test_verify_read_model_names_an_account_whose_ledger_is_damaged(busy_bank, damage):
    account_id = _account_with_the_longest_ledger()
    damage(account_id)

    assert differing_accounts() == [account_id]
    out = StringIO()
    with pytest.raises(CommandError, match="1 account"):
        call_command("verify_read_model", "--no-progress", stdout=out, stderr=StringIO())
    assert f"differs: {account_id}" in out.getvalue()


def test_verify_read_model_names_a_ledger_without_an_account_in_the_event_store(busy_bank):
    stray = uuid.uuid4()
    LedgerEntry.objects.create(
        account_id=stray,
        version=1,
        event_id=uuid.uuid4(),
        kind="OPENING",
        amount=1,
        balance_after=1,
        occurred_at=timezone.now(),
    )
    assert differing_accounts() == [str(stray)]


def test_verify_read_model_shows_its_progress_unless_told_not_to(busy_bank):
    total = services().event_store.count_events()
    err = StringIO()
    call_command("verify_read_model", stdout=StringIO(), stderr=err)
    assert "Verifying" in err.getvalue() and f"{total}/{total}" in err.getvalue()

    err = StringIO()
    call_command("verify_read_model", "--no-progress", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


# Verification compares every ledger row, and names every account that differs, with why.


def open_account_with_deposits(api, holder: str, deposits: int = 3) -> str:
    account_id = api.post(
        "/api/accounts/", {"holder": holder, "account_type": "SAVINGS", "opening_balance": "10.00"}, format="json"
    ).json()["id"]
    for n in range(deposits):
        api.post(f"/api/accounts/{account_id}/deposits", {"amount": f"{n + 1}.00"}, format="json")
    return account_id


def _rewrite_the_second_entry(account_id):
    """A forged movement in the middle: its amount and the balance after it, consistently."""
    second = LedgerEntry.objects.get(account_id=account_id, version=2)
    LedgerEntry.objects.filter(pk=second.pk).update(
        amount=second.amount + 500, balance_after=second.balance_after + 500
    )


def test_verify_read_model_names_an_account_whose_ledger_was_rewritten_in_the_middle(api):
    forged = open_account_with_deposits(api, "Forged")
    open_account_with_deposits(api, "Honest")
    _rewrite_the_second_entry(forged)

    assert [(d.account_id, d.reasons) for d in read_model_differences(event_store=services().event_store)] == [
        (forged, ["ledger differs: an entry does not match its event"])
    ]
    out = StringIO()
    with pytest.raises(CommandError, match="1 account"):
        call_command("verify_read_model", "--no-progress", stdout=out, stderr=StringIO())
    assert f"differs: {forged}: ledger differs" in out.getvalue()


def test_verify_read_model_reports_every_differing_account_with_its_reasons(api):
    from eventstore.store import NewEvent

    store = services().event_store
    accounts = {
        name: open_account_with_deposits(api, name)
        for name in (
            "balance",
            "forged",
            "lost entry",
            "missing",
            "untouched",
            "stuck",
        )
    }
    AccountSummary.objects.filter(id=accounts["balance"]).update(balance="0.01", holder="Mallory")
    _rewrite_the_second_entry(accounts["forged"])
    LedgerEntry.objects.filter(account_id=accounts["lost entry"], version=3).delete()
    LedgerEntry.objects.filter(account_id=accounts["missing"]).delete()
    AccountSummary.objects.filter(id=accounts["missing"]).delete()
    stray = uuid.uuid4()
    LedgerEntry.objects.create(
        account_id=stray,
        version=1,
        event_id=uuid.uuid4(),
        kind="OPENING",
        amount=1,
        balance_after=1,
        occurred_at=timezone.now(),
    )
    # An event no projector knows: the live projection sets it aside, and the account waits at version 4.
    poison = NewEvent(uuid.uuid4(), "FundsFrozen", {"reason": "court order"}, timezone.now(), {})
    store.append(accounts["stuck"], 4, [poison])
    api.post(f"/api/accounts/{accounts['untouched']}/deposits", {"amount": "1.00"}, format="json")  # relays the outbox
    assert AccountSummary.objects.get(id=accounts["stuck"]).version == 4

    report = {d.account_id: d.reasons for d in read_model_differences(event_store=store)}

    assert report == {
        accounts["balance"]: ["summary differs: holder, balance"],
        accounts["forged"]: ["ledger differs: an entry does not match its event"],
        accounts["lost entry"]: ["ledger differs: 3 entries, the events give 4"],
        accounts["missing"]: ["missing from the read model"],
        str(stray): ["not in the event store"],
        accounts["stuck"]: ["stuck behind 1 pending dead letter from version 5 (see Dead letters)"],
    }
    out = StringIO()
    with pytest.raises(CommandError, match="6 account"):
        call_command("verify_read_model", "--no-progress", stdout=out, stderr=StringIO())
    assert sorted(line.split(":")[1].strip() for line in out.getvalue().splitlines()) == sorted(report)


# A rebuild is blue/green: built beside the live read model, which keeps serving and being projected.


class BusyBank:
    """Tellers issuing commands and a consumer projecting the store, each on a thread (and connection) of its own.

    The command bus projects each command's events after it commits (the live
    projection); the consumer reads the store in its global order and projects
    what it reads again, as a redelivering Kafka consumer would. Both write the
    live read model while a rebuild runs.
    """

    def __init__(self, account_ids: list[str]):
        self.account_ids = list(account_ids)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.changed = threading.Condition()
        self.commands = 0
        self.threads = [
            threading.Thread(target=self._run, args=(self._teller, seed), name=f"teller-{seed}") for seed in range(3)
        ] + [threading.Thread(target=self._run, args=(self._consumer, 0), name="consumer")]

    def __enter__(self) -> "BusyBank":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in self.threads), "a teller or the consumer hung"

    def wait_for_commands(self, count: int, *, deadline_s: float = 60) -> None:
        """Until `count` more commands have completed; the deadline only bounds a hang."""
        with self.changed:
            target = self.commands + count
            if not self.changed.wait_for(lambda: self.commands >= target or self.errors, timeout=deadline_s):
                raise AssertionError(f"commands stalled while the rebuild ran ({self.commands} of {target} done)")
        assert not self.errors, self.errors

    def _run(self, work, seed: int) -> None:
        try:
            work(seed)
        except BaseException as error:  # noqa: BLE001 - reported by the test, not lost in the thread
            with self.changed:
                self.errors.append(error)
                self.changed.notify_all()
        finally:
            connection.close()

    def _teller(self, seed: int) -> None:
        from accounts.domain import commands
        from accounts.domain.errors import AccountRuleViolation

        rng = random.Random(seed)
        bus = services().bus
        while not self.stop.is_set():
            choice = rng.random()
            try:
                if choice < 0.25:  # new accounts: rows a rebuild's replay reaches too
                    account = bus.handle(
                        commands.OpenAccount(holder=f"teller {seed}", account_type="CURRENT", opening_balance="20.00")
                    )
                    self.account_ids.append(str(account.id))
                elif choice < 0.65:
                    bus.handle(
                        commands.DepositFunds(
                            account_id=uuid.UUID(rng.choice(self.account_ids)),
                            amount=f"{rng.randint(1, 900) / 100:.2f}",
                        )
                    )
                else:
                    bus.handle(
                        commands.WithdrawFunds(
                            account_id=uuid.UUID(rng.choice(self.account_ids)),
                            amount=f"{rng.randint(1, 900) / 100:.2f}",
                        )
                    )
            except AccountRuleViolation:
                pass  # insufficient funds: refused, which is a completed command too
            with self.changed:
                self.commands += 1
                self.changed.notify_all()

    def _consumer(self, _seed: int) -> None:
        store = services().event_store
        position = 0
        while True:
            stopping = self.stop.is_set()  # read first: one more pass after the tellers stop
            events = list(store.read_all(after_position=position, batch_size=50))
            if events:
                project_deliveries(deliveries=deliveries_of(events), event_store=store)
                position = events[-1].position
            if stopping and not events:
                return


def test_a_rebuild_finishes_while_commands_and_the_consumer_run_and_equals_the_event_store(api, monkeypatch):
    from projections import rebuild, replay

    accounts = [open_account_with_deposits(api, f"Busy {n}", deposits=2) for n in range(20)]
    monkeypatch.setattr(replay, "REPLAY_BATCH_SIZE", 10)  # many batches: the bank works between them
    progress_calls = []
    opened_just_before_the_swap = []
    catch_up = rebuild._catch_up

    def catch_up_then_open_an_account(tables, *args):
        """After the last catch-up before the swap, the live projection puts an account in the old tables only."""
        caught_up = catch_up(tables, *args)
        if tables == rebuild.COPY_TABLES and not connection.in_atomic_block and not opened_just_before_the_swap:
            from accounts.domain.commands import OpenAccount

            account = services().bus.handle(OpenAccount(holder="Late", account_type="SAVINGS", opening_balance="3.00"))
            opened_just_before_the_swap.append(str(account.id))
        return caught_up

    monkeypatch.setattr(rebuild, "_catch_up", catch_up_then_open_an_account)

    with BusyBank(accounts) as bank:
        bank.wait_for_commands(5)

        def on_progress(replayed: int) -> None:
            progress_calls.append(replayed)
            if len(progress_calls) <= 2:  # mid-rebuild, the bank's commands complete
                bank.wait_for_commands(5)

        events, _ = rebuild.rebuild_read_model(event_store=services().event_store, on_progress=on_progress)
        bank.wait_for_commands(5)  # and after it, on the new read model

    assert not bank.errors, bank.errors
    assert len(progress_calls) > 2 and events >= sum(progress_calls)
    assert differing_accounts() == []
    assert AccountSummary.objects.count() == len(set(bank.account_ids)) + 1
    assert AccountSummary.objects.get(id=opened_just_before_the_swap[0]).balance == Decimal("3.00")


# SQLite serialises writers (IMMEDIATE transactions): two projectors cannot both find an account missing.
@pytest.mark.mysql_only
def test_a_projection_that_loses_the_race_for_a_new_account_takes_it_as_already_applied(api, monkeypatch):
    from projections import projection

    account_id = open_account_with_deposits(api, "Raced", deposits=2)
    AccountSummary.objects.filter(id=account_id).delete()
    LedgerEntry.objects.filter(account_id=account_id).delete()
    store = services().event_store
    events = store.load_stream(account_id)
    unapplied = projection._unapplied
    rival_done = []

    def rival_projects_first(*args):
        """Between our look for the account (none) and our insert, another projector inserts and commits it."""
        pending = unapplied(*args)
        if not rival_done:
            rival_done.append("started")
            rival = threading.Thread(target=_project_on_own_connection, args=(events, store, rival_done))
            rival.start()
            rival.join(timeout=60)
            assert rival_done[-1] == 3, rival_done
        return pending

    monkeypatch.setattr(projection, "_unapplied", rival_projects_first)
    outcome = projection.project_deliveries(deliveries=deliveries_of(events), event_store=store)
    assert outcome.applied == 0  # the rival's rows stand
    assert AccountSummary.objects.get(id=account_id).balance == Decimal("13.00")
    assert differing_accounts() == []


def _project_on_own_connection(events, store, report):
    try:
        report.append(project_deliveries(deliveries=deliveries_of(events), event_store=store).applied)
    except BaseException as error:  # noqa: BLE001 - returned to the test, which reports it
        report.append(error)
    finally:
        connection.close()

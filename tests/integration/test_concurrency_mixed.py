"""Many clients on one account at once (issue 4, guarantee 2), on every event store.

Sixty clients, each with its own connection, send a seeded mix of deposits and
withdrawals to one account, all released together by a barrier. Whatever the
interleaving: no answer is a 5xx, every refusal says why, the balance never
goes below zero, the final balance is the opening plus the accepted deposits
minus the accepted withdrawals, versions are 1..n, and the read model and its
ledger agree with the event stream.
"""

import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from entrypoints.wiring import services
from projections.models import AccountSummary, LedgerEntry
from tests.servers.mongo import mongo_server  # noqa: F401  (the session's server, a pytest fixture)
from tests.wiring import rewire

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 60
# With this seed the withdrawals ask for more than the opening balance and all the
# deposits together, so in any interleaving some of them are refused.
SEED = 2026
OPENING_BALANCE = Decimal("100.00")
# The resource API refuses with 409 and a code; the techbank API, as techbank
# did, with 400 and a bare message, but a lost race (retry it) with 409 on both.
RESOURCE_REFUSALS = {"insufficient_funds", "concurrency_conflict"}
TECHBANK_INSUFFICIENT_FUNDS = "Insufficient funds:"
TECHBANK_CONFLICT = "The account is busy with other changes; please retry the request"


@dataclass(frozen=True)
class Movement:
    kind: str  # "deposit" or "withdrawal"
    amount: Decimal
    through_techbank_api: bool
    correlation_id: str


@dataclass
class Outcome:
    movement: Movement
    status: int
    body: dict

    @property
    def accepted(self) -> bool:
        return self.status == 200

    @property
    def refusal(self) -> str | None:
        """insufficient_funds or concurrency_conflict, whichever API answered; None if not a known refusal."""
        if self.movement.through_techbank_api:
            message = self.body.get("message", "")
            if self.status == 400 and message.startswith(TECHBANK_INSUFFICIENT_FUNDS):
                return "insufficient_funds"
            if self.status == 409 and message == TECHBANK_CONFLICT:
                return "concurrency_conflict"
            return None
        if self.status == 409 and self.body.get("code") in RESOURCE_REFUSALS:
            return self.body["code"]
        return None


@pytest.fixture(params=["sql", "mongo"])
def event_store_backend(request, settings):
    """The composition root on the SQL event store (the test database) or on MongoDB.

    The read model stays on the Django database, projected by the in-process bus.
    """
    if request.param == "sql":
        yield "sql"
        return
    server = request.getfixturevalue("mongo_server")
    settings.TECHBANK_EVENT_STORE = "mongo"
    settings.TECHBANK_MONGO_URL = f"{server}/techbank_race_{uuid.uuid4().hex[:12]}?retryWrites=false"
    rewire()
    try:
        yield "mongo"
    finally:
        store = services().event_store
        store.drop_everything()
        store.close()
        rewire()  # `settings` puts the SQL store back after this


def seeded_movements(seed: int, count: int) -> list[Movement]:
    """Deposits and withdrawals of 0.01 to 60.00, withdrawals a little more often, a quarter through /api/v1/."""
    rng = random.Random(seed)
    movements = []
    for _ in range(count):
        kind = "withdrawal" if rng.random() < 0.55 else "deposit"
        cents = rng.randint(1, 6000 if kind == "withdrawal" else 3000)
        movements.append(
            Movement(
                kind=kind,
                amount=Decimal(cents).scaleb(-2),
                through_techbank_api=rng.random() < 0.25,
                correlation_id=f"race-{uuid.uuid4()}",
            )
        )
    return movements


def send_all_at_once(api: APIClient, account_id: str, movements: list[Movement]) -> list[Outcome]:
    """Each movement from its own thread, client and database connection, released by one barrier."""
    barrier = threading.Barrier(len(movements))
    outcomes: list[Outcome | None] = [None] * len(movements)
    failures: list[BaseException] = []
    credentials = api._credentials

    def send(index: int, movement: Movement):
        client = APIClient()
        client.credentials(**credentials, HTTP_X_CORRELATION_ID=movement.correlation_id)
        try:
            barrier.wait()
            if movement.through_techbank_api:
                route = "depositFunds" if movement.kind == "deposit" else "withdrawFunds"
                response = client.put(f"/api/v1/{route}/{account_id}", {"amount": str(movement.amount)}, format="json")
            else:
                route = "deposits" if movement.kind == "deposit" else "withdrawals"
                response = client.post(
                    f"/api/accounts/{account_id}/{route}", {"amount": str(movement.amount)}, format="json"
                )
            outcomes[index] = Outcome(movement, response.status_code, response.json())
        except BaseException as error:  # noqa: BLE001  (reported by the main thread)
            failures.append(error)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, m)) for i, m in enumerate(movements)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return outcomes


def test_sixty_concurrent_mixed_movements_keep_every_invariant(api, event_store_backend):
    account_id = api.post(
        "/api/accounts/",
        {"holder": "Busy Account", "account_type": "CURRENT", "opening_balance": str(OPENING_BALANCE)},
        format="json",
    ).json()["id"]
    movements = seeded_movements(SEED, CLIENTS)

    outcomes = send_all_at_once(api, account_id, movements)

    # Every answer is a success or a refusal that says why: never a 5xx, never a bare 409.
    unexplained = [(o.movement, o.status, o.body) for o in outcomes if not o.accepted and o.refusal is None]
    assert unexplained == []
    refusals = Counter(o.refusal for o in outcomes if not o.accepted)
    accepted = [o for o in outcomes if o.accepted]
    print(f"\n[{event_store_backend}] {len(accepted)} accepted of {CLIENTS}; refused: {dict(refusals)}")
    assert accepted and refusals["insufficient_funds"] > 0

    # The stream: versions 1..n, the opening then exactly the accepted movements.
    stream = services().event_store.load_stream(account_id)
    assert [e.version for e in stream] == list(range(1, len(accepted) + 2))
    assert stream[0].event_type == "AccountOpened"
    stored = {e.metadata["correlation_id"]: e for e in stream[1:]}
    assert set(stored) == {o.movement.correlation_id for o in accepted}
    for outcome in accepted:
        event = stored[outcome.movement.correlation_id]
        expected_type = "FundsDeposited" if outcome.movement.kind == "deposit" else "FundsWithdrawn"
        assert (event.event_type, Decimal(event.data["amount"])) == (expected_type, outcome.movement.amount)

    # Replaying the stream, the balance never goes below zero, and each resource
    # API answer showed the account exactly as its own event left it.
    balance, balance_after = Decimal(stream[0].data["opening_balance"]), {1: OPENING_BALANCE}
    for event in stream[1:]:
        amount = Decimal(event.data["amount"])
        balance += amount if event.event_type == "FundsDeposited" else -amount
        assert balance >= 0, f"negative balance {balance} at version {event.version}"
        balance_after[event.version] = balance
    for outcome in accepted:
        if not outcome.movement.through_techbank_api:
            version = stored[outcome.movement.correlation_id].version
            assert (outcome.body["version"], Decimal(outcome.body["balance"])) == (version, balance_after[version])

    # The final balance is the opening plus accepted deposits minus accepted withdrawals.
    deposited = sum((o.movement.amount for o in accepted if o.movement.kind == "deposit"), Decimal("0.00"))
    withdrawn = sum((o.movement.amount for o in accepted if o.movement.kind == "withdrawal"), Decimal("0.00"))
    assert balance == OPENING_BALANCE + deposited - withdrawn

    # The read model and its ledger agree with the stream.
    summary = AccountSummary.objects.get(id=account_id)
    assert (summary.balance, summary.version) == (balance, len(stream))
    ledger = list(
        LedgerEntry.objects.filter(account_id=account_id).order_by("version").values_list("version", "balance_after")
    )
    assert ledger == sorted(balance_after.items())
    assert all(after >= 0 for _, after in ledger)
    detail = api.get(f"/api/accounts/{account_id}/").json()
    assert (Decimal(detail["balance"]), detail["version"]) == (balance, len(stream))

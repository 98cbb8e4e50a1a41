"""The bank's rules as a client meets them: each refusal names its field and problem
(the API answers `{field: [problem]}`), each event carries its account and request."""

import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from accounts.domain import errors
from accounts.domain.bank_account import BankAccount
from accounts.domain.commands import CommandMetadata
from accounts.domain.events import AccountClosed, FundsWithdrawn
from accounts.domain.metadata import EventMetadata


def opened(**changes) -> BankAccount:
    fields = {
        "account_id": uuid.uuid4(),
        "holder": "Ada Lovelace",
        "account_type": "SAVINGS",
        "opening_balance": "100.00",
    }
    fields.update(changes)
    return BankAccount.open(**fields)


@pytest.mark.parametrize(
    "changes, field, problem",
    [
        ({"holder": 42}, "holder", "must be a string"),
        ({"holder": " "}, "holder", "must not be empty"),
        ({"holder": "x" * 256}, "holder", "must be at most 255 characters"),
        ({"holder": "Ada\x1fL"}, "holder", "must not contain control characters"),
        ({"holder": "a\udfffb"}, "holder", "must be valid Unicode text (it contains a lone surrogate)"),
        (
            {"holder": "Ada\u202eL"},
            "holder",
            "must not contain invisible format characters (bidirectional controls, zero-width characters)",
        ),
        ({"account_type": "CHECKING"}, "account_type", "must be one of SAVINGS, CURRENT"),
        ({"opening_balance": "-0.01"}, "opening_balance", "must not be negative"),
        ({"opening_balance": "ten"}, "opening_balance", "must be a plain decimal number such as 125.00"),
    ],
)
def test_a_refused_opening_names_the_field_and_the_problem(changes, field, problem):
    with pytest.raises(errors.InvalidCommand) as refused:
        opened(**changes)
    assert (refused.value.field, refused.value.problem) == (field, problem)
    assert str(refused.value) == f"{field} {problem}"


@pytest.mark.parametrize("holder", ["Ada\x7fL", "Ada\x9fL"])
def test_delete_and_the_c1_control_characters_are_refused_in_a_holder(holder):
    with pytest.raises(errors.InvalidHolder, match="control characters"):
        opened(holder=holder)


@pytest.mark.parametrize("holder", ["Ada~L", "Ada\xa0Lovelace", "Zo\xeb", "\ud7ffA", "\ue000A"])
def test_printable_text_next_to_the_refused_ranges_is_a_valid_holder(holder):
    """The last ASCII character, a no-break space, Latin-1 letters, the code points either side of the surrogates."""
    assert opened(holder=holder).holder == holder


def test_a_movement_on_a_closed_account_is_refused_with_a_message_saying_so():
    account = opened()
    account.close()
    with pytest.raises(errors.AccountIsClosed) as refused:
        account.deposit("1.00")
    assert str(refused.value) == "This bank account is closed: no deposits or withdrawals"
    with pytest.raises(errors.AccountAlreadyClosed) as refused_again:
        account.close()
    assert str(refused_again.value) == "This bank account is already closed"


def test_an_unknown_account_is_refused_with_its_id_in_the_message():
    account_id = uuid.uuid4()
    with pytest.raises(errors.AccountNotFound) as refused:
        BankAccount.from_history(account_id, [])
    assert str(refused.value) == f"No bank account with id {account_id}"


def test_every_event_carries_its_account_and_the_request_that_caused_it():
    request = CommandMetadata(issued_by="teller", correlation_id="c-9", idempotency_key="k")
    account = opened(metadata=replace(request, idempotency_key="k-open"))
    account.deposit("5.00", metadata=replace(request, idempotency_key="k-in"))
    account.withdraw("1.00", metadata=replace(request, idempotency_key="k-out"))
    account.close(metadata=replace(request, idempotency_key="k-close"))
    assert [event.account_id for event in account.pending_events] == [account.id] * 4
    assert [event.metadata.idempotency_key for event in account.pending_events] == [
        "k-open",
        "k-in",
        "k-out",
        "k-close",
    ]
    withdrawn, closed = account.pending_events[2:]
    assert isinstance(withdrawn, FundsWithdrawn) and withdrawn.metadata == EventMetadata(
        issued_by="teller", correlation_id="c-9", idempotency_key="k-out", occurred_at=withdrawn.occurred_at
    )
    assert isinstance(closed, AccountClosed) and closed.metadata == EventMetadata(
        issued_by="teller", correlation_id="c-9", idempotency_key="k-close", occurred_at=closed.occurred_at
    )


def test_an_event_recorded_without_a_request_carries_empty_metadata_and_its_time():
    account = opened()
    [event] = account.pending_events
    assert event.metadata == EventMetadata(occurred_at=event.occurred_at) and event.occurred_at.tzinfo is not None


def test_a_withdrawal_down_to_exactly_zero_and_a_deposit_up_to_exactly_the_limit_go_through():
    account = opened(opening_balance="0.01")
    account.withdraw(Decimal("0.01"))
    account.deposit("9999999999999.99")
    assert account.balance == Decimal("9999999999999.99")

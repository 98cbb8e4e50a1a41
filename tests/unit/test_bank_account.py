import uuid
from decimal import Decimal

import pytest

from accounts.domain import errors
from accounts.domain.bank_account import BankAccount
from accounts.domain.commands import CommandMetadata
from accounts.domain.events import AccountClosed, AccountOpened, FundsDeposited, FundsWithdrawn
from accounts.domain.metadata import EventMetadata


def opened(balance="100.00", **kwargs) -> BankAccount:
    fields = {"account_id": uuid.uuid4(), "holder": "Ada Lovelace", "account_type": "SAVINGS"}
    fields.update(kwargs)
    account = BankAccount.open(opening_balance=Decimal(balance), **fields)
    return account


def replayed(account: BankAccount) -> BankAccount:
    """The account as a later command would see it: rebuilt from its events."""
    return BankAccount.from_history(account.id, account.pending_events)


def test_opening_records_account_opened_as_version_1():
    account = opened("100", metadata=CommandMetadata(issued_by="teller", correlation_id="c-1"))
    [event] = account.pending_events
    assert isinstance(event, AccountOpened)
    assert (event.version, event.holder, event.account_type) == (1, "Ada Lovelace", "SAVINGS")
    assert event.opening_balance == Decimal("100.00")
    assert event.metadata == EventMetadata(issued_by="teller", correlation_id="c-1", occurred_at=event.occurred_at)
    assert event.occurred_at.tzinfo is not None


def test_the_holder_is_trimmed():
    assert opened(holder="  Ada  ").holder == "Ada"


@pytest.mark.parametrize(
    "holder, problem",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 256, "255"),
        ("Ada\x00", "control"),
        ("Ada\nL", "control"),
        ("A\x85da", "control"),
        ("a\ud800b", "surrogate"),
        ("Ada\u202eecalevoL", "format"),  # right-to-left override
        ("Ada\u200bLovelace", "format"),  # zero-width space
        ("\ufeffAda", "format"),  # byte order mark
        (42, "string"),
    ],
)
def test_a_bad_holder_is_refused(holder, problem):
    with pytest.raises(errors.InvalidHolder, match=problem):
        opened(holder=holder)


def test_a_holder_of_255_characters_is_accepted():
    assert len(opened(holder="x" * 255).holder) == 255


@pytest.mark.parametrize("account_type", ["CHECKING", "savings", "", None])
def test_only_savings_and_current_accounts_exist(account_type):
    with pytest.raises(errors.InvalidAccountType):
        opened(account_type=account_type)


def test_an_account_can_open_with_zero_but_not_a_negative_balance():
    assert opened("0").balance == Decimal("0.00")
    with pytest.raises(errors.InvalidAmount, match="negative"):
        opened("-0.01")


def test_deposits_and_withdrawals_move_the_balance_in_cents():
    account = opened("100.00")
    account.deposit(Decimal("0.10"))
    account.deposit(Decimal("0.20"))
    account.withdraw(Decimal("50.05"))
    assert account.balance == Decimal("50.25")
    assert [type(e) for e in account.pending_events] == [AccountOpened, FundsDeposited, FundsDeposited, FundsWithdrawn]
    assert [e.version for e in account.pending_events] == [1, 2, 3, 4]
    assert replayed(account).balance == Decimal("50.25")


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), Decimal("0.001"), Decimal("NaN")])
def test_a_deposit_must_be_a_positive_amount_in_cents(amount):
    account = opened()
    with pytest.raises(errors.InvalidAmount):
        account.deposit(amount)
    assert account.balance == Decimal("100.00") and len(account.pending_events) == 1


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-10"), Decimal("1.234")])
def test_a_withdrawal_must_be_a_positive_amount_in_cents(amount):
    with pytest.raises(errors.InvalidAmount):
        opened().withdraw(amount)


def test_a_withdrawal_beyond_the_balance_is_refused():
    account = opened("100.00")
    with pytest.raises(errors.InsufficientFunds, match=r"100\.00"):
        account.withdraw(Decimal("100.01"))
    assert account.balance == Decimal("100.00")


def test_the_whole_balance_can_be_withdrawn():
    account = opened("100.00")
    account.withdraw(Decimal("100.00"))
    assert account.balance == Decimal("0.00")


def test_a_closed_account_takes_no_deposits_or_withdrawals():
    account = opened()
    account.close()
    with pytest.raises(errors.AccountIsClosed):
        account.deposit(Decimal("1"))
    with pytest.raises(errors.AccountIsClosed):
        account.withdraw(Decimal("1"))
    assert isinstance(account.pending_events[-1], AccountClosed)


def test_an_account_cannot_be_closed_twice():
    account = opened()
    account.close()
    replayed_closed = replayed(account)
    with pytest.raises(errors.AccountAlreadyClosed):
        replayed_closed.close()


def test_replaying_history_restores_state_without_recording_anything():
    account = opened("10.00")
    account.deposit(Decimal("5"))
    account.close()
    again = replayed(account)
    assert (again.balance, again.is_closed, again.version, again.holder) == (Decimal("15.00"), True, 3, "Ada Lovelace")
    assert again.pending_events == []
    assert again.closed_at == account.pending_events[-1].occurred_at


def test_an_account_with_no_history_does_not_exist():
    with pytest.raises(errors.AccountNotFound):
        BankAccount.from_history(uuid.uuid4(), [])


def test_all_refusals_share_one_parent_error():
    for error in (errors.InvalidAmount, errors.InsufficientFunds, errors.AccountIsClosed, errors.AccountNotFound):
        assert issubclass(error, errors.BankAccountError)


def test_a_deposit_may_not_take_the_balance_past_the_limit():
    account = opened("9999999999999.98")
    account.deposit(Decimal("0.01"))
    with pytest.raises(errors.BalanceLimitExceeded, match=r"9,999,999,999,999\.99"):
        account.deposit(Decimal("0.01"))
    assert account.balance == Decimal("9999999999999.99")

"""RecentAccounts, the unit of work's copies of the accounts it stored last: which it keeps, which it
lets go, and how it stops reusing copies while most of them turn out out of date."""

import itertools
import uuid

from accounts.domain.bank_account import BankAccount
from accounts.service_layer.unit_of_work import RecentAccounts


def stored_account() -> BankAccount:
    """An account as the repository hands it back after storing it: no pending events."""
    opened = BankAccount.open(account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance="1.00")
    return BankAccount.from_history(opened.id, opened.pending_events)


def test_one_place_is_enough_to_keep_the_last_account():
    recent, account = RecentAccounts(1), stored_account()
    recent.keep(account.id, account)
    assert recent.take(account.id) is account
    assert recent.take(account.id) is None  # taken: the next caller loads it


def test_with_no_room_nothing_is_kept():
    recent, account = RecentAccounts(0), stored_account()
    recent.keep(account.id, account)
    assert recent.take(account.id) is None


def test_the_account_stored_least_recently_is_let_go_first():
    recent = RecentAccounts(2)
    a, b, c = stored_account(), stored_account(), stored_account()
    for account in (a, b, a, c):  # `a` stored again after `b`: `b` is now the oldest
        recent.keep(account.id, account)
    assert (recent.take(a.id), recent.take(b.id), recent.take(c.id)) == (a, None, c)


def reused_of(recent: RecentAccounts, takes: int) -> list[int]:
    """Which of `takes` successive commands on one account (counted from 1) would reuse its copy."""
    account, reused = stored_account(), []
    for take in range(1, takes + 1):
        recent.keep(account.id, account)
        if recent.take(account.id) is not None:
            reused.append(take)
    return reused


def outcomes_until_most_are_out_of_date() -> int:
    """The first n for which n out-of-date copies in a row make the running share more than half."""
    return next(n for n in itertools.count(1) if 1 - (1 - RecentAccounts._WEIGHT) ** n > 0.5)


def test_while_fewer_than_half_the_reused_copies_were_out_of_date_every_copy_is_reused():
    recent = RecentAccounts(10)
    for _ in range(outcomes_until_most_are_out_of_date() - 1):
        recent.note(out_of_date=True)
    assert reused_of(recent, 16) == list(range(1, 17))


def test_while_most_reused_copies_were_out_of_date_only_one_in_probe_every_is_reused():
    recent = RecentAccounts(10)
    for _ in range(outcomes_until_most_are_out_of_date()):
        recent.note(out_of_date=True)
    every = RecentAccounts.PROBE_EVERY
    assert reused_of(recent, 2 * every) == [every, 2 * every]


def test_copies_that_go_through_again_bring_reuse_back():
    recent = RecentAccounts(10)
    for _ in range(40):
        recent.note(out_of_date=True)
    for _ in range(40):
        recent.note(out_of_date=False)
    assert reused_of(recent, 16) == list(range(1, 17))


def test_a_single_out_of_date_copy_does_not_stop_reuse():
    recent = RecentAccounts(10)
    recent.note(out_of_date=True)
    assert reused_of(recent, 4) == [1, 2, 3, 4]

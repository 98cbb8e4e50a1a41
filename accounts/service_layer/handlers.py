"""Command handlers: load the aggregate, let it decide, store what it recorded."""

import uuid
from collections.abc import Callable
from typing import Any, Protocol

from accounts.domain import commands
from accounts.domain.bank_account import BankAccount
from accounts.domain.errors import AccountNotFound


class AccountSource(Protocol):
    """Where a handler loads accounts: the repository, or the command bus's view of it for one attempt."""

    def get(self, account_id: uuid.UUID) -> BankAccount: ...


# Opening under an idempotency key gives the account an id derived from the key,
# so a retry (even after a crash between storing and answering) finds the account
# it opened instead of opening a second one.
IDEMPOTENT_OPENING = uuid.UUID("6f1c1a52-3d0e-4d55-9a43-5b0c8e2f7d10")


def _opening_id(metadata: commands.CommandMetadata) -> uuid.UUID:
    if not metadata.idempotency_key:
        return uuid.uuid4()
    return uuid.uuid5(IDEMPOTENT_OPENING, f"{metadata.issued_by}\n{metadata.idempotency_key}")


def _already_handled(account: BankAccount, metadata: commands.CommandMetadata) -> bool:
    if not metadata.idempotency_key:
        return False  # no key, no earlier request to find
    return account.has_handled(metadata.as_dict(), since=metadata.idempotent_since)


def open_account(cmd: commands.OpenAccount, accounts: AccountSource) -> BankAccount:
    account_id = _opening_id(cmd.metadata)
    if cmd.metadata.idempotency_key:
        try:
            existing = accounts.get(account_id)
        except AccountNotFound:
            pass
        else:
            if _already_handled(existing, cmd.metadata):
                return existing
            account_id = uuid.uuid4()  # the key was used long ago: this is a new request
    return BankAccount.open(
        account_id=account_id,
        holder=cmd.holder,
        account_type=cmd.account_type,
        opening_balance=cmd.opening_balance,
        metadata=cmd.metadata.as_dict(),
    )


def deposit_funds(cmd: commands.DepositFunds, accounts: AccountSource) -> BankAccount:
    account = accounts.get(cmd.account_id)
    if not _already_handled(account, cmd.metadata):
        account.deposit(cmd.amount, metadata=cmd.metadata.as_dict())
    return account


def withdraw_funds(cmd: commands.WithdrawFunds, accounts: AccountSource) -> BankAccount:
    account = accounts.get(cmd.account_id)
    if not _already_handled(account, cmd.metadata):
        account.withdraw(cmd.amount, metadata=cmd.metadata.as_dict())
    return account


def close_account(cmd: commands.CloseAccount, accounts: AccountSource) -> BankAccount:
    account = accounts.get(cmd.account_id)
    if not _already_handled(account, cmd.metadata):
        account.close(metadata=cmd.metadata.as_dict())
    return account


# Each handler takes its own command class: Any stands for "the key's class", which a dict type cannot say.
COMMAND_HANDLERS: dict[type[commands.Command], Callable[[Any, AccountSource], BankAccount]] = {
    commands.OpenAccount: open_account,
    commands.DepositFunds: deposit_funds,
    commands.WithdrawFunds: withdraw_funds,
    commands.CloseAccount: close_account,
}

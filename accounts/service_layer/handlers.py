"""Command handlers: get the accounts from the unit of work, let them decide; the bus commits."""

import uuid
from collections.abc import Callable
from typing import Any

from accounts.domain import commands
from accounts.domain.bank_account import BankAccount
from accounts.domain.errors import AccountNotFound
from accounts.service_layer.unit_of_work import UnitOfWork

# Opening under an idempotency key gives the account an id derived from the key,
# so a retry (even after a crash between storing and answering) finds the account
# it opened instead of opening a second one.
IDEMPOTENT_OPENING = uuid.UUID("6f1c1a52-3d0e-4d55-9a43-5b0c8e2f7d10")


def _opening_id(metadata: commands.CommandMetadata) -> uuid.UUID:
    if not metadata.idempotency_key:
        return uuid.uuid4()
    return uuid.uuid5(IDEMPOTENT_OPENING, f"{metadata.issued_by}\n{metadata.idempotency_key}")


def open_account(cmd: commands.OpenAccount, uow: UnitOfWork) -> BankAccount:
    account_id = _opening_id(cmd.metadata)
    if cmd.metadata.idempotency_key:
        try:
            existing = uow.accounts.get(account_id)
        except AccountNotFound:
            pass
        else:
            if uow.has_handled(account_id, cmd.metadata):
                return existing
            account_id = uuid.uuid4()  # the key was used long ago: this is a new request
    account = BankAccount.open(
        account_id=account_id,
        holder=cmd.holder,
        account_type=cmd.account_type,
        opening_balance=cmd.opening_balance,
        metadata=cmd.metadata,
    )
    uow.accounts.add(account)
    return account


def deposit_funds(cmd: commands.DepositFunds, uow: UnitOfWork) -> BankAccount:
    account = uow.accounts.get(cmd.account_id)
    if not uow.has_handled(cmd.account_id, cmd.metadata):
        account.deposit(cmd.amount, metadata=cmd.metadata)
    return account


def withdraw_funds(cmd: commands.WithdrawFunds, uow: UnitOfWork) -> BankAccount:
    account = uow.accounts.get(cmd.account_id)
    if not uow.has_handled(cmd.account_id, cmd.metadata):
        account.withdraw(cmd.amount, metadata=cmd.metadata)
    return account


def close_account(cmd: commands.CloseAccount, uow: UnitOfWork) -> BankAccount:
    account = uow.accounts.get(cmd.account_id)
    if not uow.has_handled(cmd.account_id, cmd.metadata):
        account.close(metadata=cmd.metadata)
    return account


# Each handler takes its own command class: Any stands for "the key's class", which a dict type cannot say.
COMMAND_HANDLERS: dict[type[commands.Command], Callable[[Any, UnitOfWork], BankAccount]] = {
    commands.OpenAccount: open_account,
    commands.DepositFunds: deposit_funds,
    commands.WithdrawFunds: withdraw_funds,
    commands.CloseAccount: close_account,
}

"""Command handlers: load the aggregate, let it decide, store what it recorded."""
import uuid

from accounts.adapters.repository import BankAccountRepository
from accounts.domain import commands
from accounts.domain.bank_account import BankAccount


def open_account(cmd: commands.OpenAccount, accounts: BankAccountRepository) -> BankAccount:
    return BankAccount.open(
        account_id=uuid.uuid4(),
        holder=cmd.holder,
        account_type=cmd.account_type,
        opening_balance=cmd.opening_balance,
        metadata=cmd.metadata.as_dict(),
    )


def deposit_funds(cmd: commands.DepositFunds, accounts: BankAccountRepository) -> BankAccount:
    account = accounts.get(cmd.account_id)
    account.deposit(cmd.amount, metadata=cmd.metadata.as_dict())
    return account


def withdraw_funds(cmd: commands.WithdrawFunds, accounts: BankAccountRepository) -> BankAccount:
    account = accounts.get(cmd.account_id)
    account.withdraw(cmd.amount, metadata=cmd.metadata.as_dict())
    return account


def close_account(cmd: commands.CloseAccount, accounts: BankAccountRepository) -> BankAccount:
    account = accounts.get(cmd.account_id)
    account.close(metadata=cmd.metadata.as_dict())
    return account


COMMAND_HANDLERS = {
    commands.OpenAccount: open_account,
    commands.DepositFunds: deposit_funds,
    commands.WithdrawFunds: withdraw_funds,
    commands.CloseAccount: close_account,
}

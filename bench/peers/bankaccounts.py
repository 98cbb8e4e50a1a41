"""The eventsourcing library's banking example, as its documentation builds it.

The example (examples/bankaccounts in the library's repository: a BankAccount
aggregate and a BankAccounts application) is not shipped in the wheel, so this
is the minimal equivalent for the commands the benchmark sends: open, credit,
debit, with the example's checks (account not closed, sufficient funds within
the overdraft limit), events declared with the library's @event decorator, and
the application loading the aggregate from its events and saving what it recorded.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class TransactionError(Exception):
    pass


class AccountClosedError(TransactionError):
    pass


class InsufficientFundsError(TransactionError):
    pass


class BankAccount(Aggregate):
    @event("Opened")
    def __init__(self, full_name: str, email_address: str, opening_balance: Decimal):
        self.full_name = full_name
        self.email_address = email_address
        self.balance = opening_balance
        self.overdraft_limit = Decimal("0.00")
        self.is_closed = False

    @event("Credited")
    def credit(self, amount: Decimal) -> None:
        self.check_account_is_not_closed()
        self.balance += amount

    @event("Debited")
    def debit(self, amount: Decimal) -> None:
        self.check_account_is_not_closed()
        self.check_has_sufficient_funds(amount)
        self.balance -= amount

    @event("Closed")
    def close(self) -> None:
        self.is_closed = True

    def check_account_is_not_closed(self) -> None:
        if self.is_closed:
            raise AccountClosedError({"account_id": self.id})

    def check_has_sufficient_funds(self, amount: Decimal) -> None:
        if self.balance - amount < -self.overdraft_limit:
            raise InsufficientFundsError({"account_id": self.id})


class BankAccounts(Application):
    def open_account(self, full_name: str, email_address: str, opening_balance: Decimal) -> UUID:
        account = BankAccount(full_name=full_name, email_address=email_address, opening_balance=opening_balance)
        self.save(account)
        return account.id

    def get_account(self, account_id: UUID) -> BankAccount:
        return self.repository.get(account_id)

    def deposit_funds(self, credit_account_id: UUID, amount: Decimal) -> None:
        account = self.get_account(credit_account_id)
        account.credit(amount)
        self.save(account)

    def withdraw_funds(self, debit_account_id: UUID, amount: Decimal) -> None:
        account = self.get_account(debit_account_id)
        account.debit(amount)
        self.save(account)

"""Typed domain errors, under one parent so callers can catch them all."""


class BankAccountError(Exception):
    """A command was refused by the bank's rules or by its own input."""

    code = "domain_error"


class InvalidCommand(BankAccountError):
    """A command's input is not acceptable, whatever the account's state."""

    code = "validation_error"

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


class InvalidAmount(InvalidCommand):
    pass


class InvalidHolder(InvalidCommand):
    pass


class InvalidAccountType(InvalidCommand):
    pass


class AccountRuleViolation(BankAccountError):
    """The command is well formed but the account's state forbids it."""


class AccountIsClosed(AccountRuleViolation):
    code = "account_closed"


class AccountAlreadyClosed(AccountIsClosed):
    pass


class InsufficientFunds(AccountRuleViolation):
    code = "insufficient_funds"


class BalanceLimitExceeded(AccountRuleViolation):
    code = "balance_limit_exceeded"


class AccountNotFound(BankAccountError):
    code = "not_found"

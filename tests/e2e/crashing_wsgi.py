"""Test-only WSGI entry point: TechBank, plus a way to crash right after a command's events are stored.

A request carrying `X-Test-Crash-After-Store: 1` runs as usual until the
repository's save has returned (the event store's append has committed), and
then the worker process SIGKILLs itself: no response, no publication nudge, no
idempotency record completed. The client sees a dropped connection, as it would
if the machine died at that instant. Without the header the app is unchanged.

Only tests/e2e/test_faults.py serves this module (`gunicorn tests.e2e.crashing_wsgi`);
the product has no such hook.
"""

import os
import signal
import threading

from accounts.adapters.repository import BankAccountRepository
from techbank_site.wsgi import application as techbank_application

CRASH_HEADER = "HTTP_X_TEST_CRASH_AFTER_STORE"  # X-Test-Crash-After-Store, as WSGI spells it

_current_request = threading.local()  # gunicorn's gthread worker runs each request in one thread
_save = BankAccountRepository.save


def _save_then_crash(self, account):
    stored = _save(self, account)
    if stored and getattr(_current_request, "crash_after_store", False):
        os.kill(os.getpid(), signal.SIGKILL)
    return stored


BankAccountRepository.save = _save_then_crash


def application(environ, start_response):
    _current_request.crash_after_store = environ.get(CRASH_HEADER) == "1"
    try:
        return techbank_application(environ, start_response)
    finally:
        _current_request.crash_after_store = False

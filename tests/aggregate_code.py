"""Editing the aggregate's code in a test, as a deployment of new code would.

`aggregate_schema()` fingerprints the source files of the code that turns
stored events into an account's state; snapshots carry it. The fixture below
points one of those modules at an edited copy of its file and clears the
cached fingerprint, so the code under test sees what a process started after
the edit would see. Everything is put back (and the cache cleared) afterwards.
"""

from pathlib import Path

import pytest

from accounts.adapters import event_mapping, repository
from accounts.adapters.repository import aggregate_schema
from accounts.domain import bank_account, events, metadata
from accounts.service_layer import handled_requests

# The modules a replay or a snapshot runs: a change to any of them must change the fingerprint.
REPLAY_CODE = (bank_account, events, metadata, event_mapping, handled_requests, repository)


@pytest.fixture
def edit_aggregate_code(tmp_path):
    """edit_aggregate_code(module=bank_account): from now on, `module`'s file has one more line."""
    with pytest.MonkeyPatch.context() as patch:

        def edit(module=bank_account) -> None:
            source = Path(module.__file__)
            edited = tmp_path / f"{module.__name__}.py"
            edited.write_bytes(source.read_bytes() + b"\nEDITED_FOR_A_TEST = True\n")
            patch.setattr(module, "__file__", str(edited))
            aggregate_schema.cache_clear()

        yield edit
    aggregate_schema.cache_clear()  # the real code's fingerprint again

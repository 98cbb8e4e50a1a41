"""The relay reads the SQL outbox from the outbox's side: its cost follows the outbox, not the store.

The embedded stack's relay reads the outbox after every command; read from the
events' side, each read scanned every event ever stored. The query plan says
which table is read first (the other is reached by its key).
"""

import re
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from eventstore.backends.django_orm import DjangoEventStore
from eventstore.store import NewEvent

pytestmark = pytest.mark.django_db


def test_the_outbox_is_read_from_its_own_table_and_the_events_reached_by_key():
    store = DjangoEventStore()
    stored = store.append(str(uuid.uuid4()), 0, [NewEvent(uuid.uuid4(), "FundsDeposited", {}, datetime.now(UTC))])
    executed = []

    def record(execute, sql, params, many, context):
        executed.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert [e.event_id for e in store.unpublished()] == [stored[0].event_id]
    [(sql, params)] = executed

    explain = "EXPLAIN QUERY PLAN" if connection.vendor == "sqlite" else "EXPLAIN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {sql}", params)
        plan = cursor.fetchall()
    if connection.vendor == "sqlite":  # (id, parent, notused, detail): the events are searched by key, never scanned
        details = [row[3] for row in plan]
        assert not [d for d in details if re.match(r"SCAN (e|event_store)( |$)", d)], (sql, details)
    else:  # MySQL/MariaDB (id, select_type, table, type, ...): the events reached by their primary key
        [events_row] = [row for row in plan if row[2] in ("e", "event_store")]
        assert events_row[3] == "eq_ref", (sql, plan)

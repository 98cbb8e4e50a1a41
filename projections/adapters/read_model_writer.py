"""The read model's writer: the connections, the SQL and each database's own dialect.

The projection (projections.projection), the rebuild (projections.rebuild) and
the replay decide what the rows are; this module is how they reach the tables:
rows written with the driver's executemany, upserts in the database's own
syntax, summaries locked for update, the rebuild's copies of the tables made,
swapped in and dropped the way SQLite and MySQL/MariaDB each allow, and the
SQLite page cache a replay needs.
"""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction
from django.db.models.constants import OnConflict

from projections.models import AccountSummary, LedgerEntry
from projections.projectors import LedgerRow

logger = logging.getLogger(__name__)

# How many summaries one query locks: a batch from the topic may hold thousands of accounts.
LOCK_CHUNK_SIZE = 1_000
SUMMARY_FIELDS = ("holder", "account_type", "balance", "status", "opened_at", "closed_at", "version")
LEDGER_COLUMNS = ("account", "version", "event_id", "kind", "amount", "balance_after", "occurred_at")
MYSQL_DEADLOCK = 1213
MYSQL_LOCK_WAIT_TIMEOUT = 1205
# The page cache of a replay's SQLite connection, in KiB (its memory grows by up to that much).
SQLITE_REPLAY_CACHE_KIB = 128 * 1024
# MySQL/MariaDB: how long the rebuild's RENAME waits for transactions on the live tables to end, and how
# often it tries. While it waits, new queries on those tables queue behind it: it must not wait long.
SWAP_LOCK_WAIT_SECONDS = 5
SWAP_ATTEMPTS = 12


@dataclass(frozen=True)
class ReadModelTables:
    """The tables a projection writes: the live read model's, or a rebuild's copies beside them."""

    summary: str
    ledger: str


LIVE_TABLES = ReadModelTables(summary=AccountSummary._meta.db_table, ledger=LedgerEntry._meta.db_table)
COPY_TABLES = ReadModelTables(summary=f"{LIVE_TABLES.summary}__rebuild", ledger=f"{LIVE_TABLES.ledger}__rebuild")
RETIRED_TABLES = ReadModelTables(summary=f"{LIVE_TABLES.summary}__retired", ledger=f"{LIVE_TABLES.ledger}__retired")
# Each live table beside its copy.
LIVE_AND_COPY = ((LIVE_TABLES.summary, COPY_TABLES.summary), (LIVE_TABLES.ledger, COPY_TABLES.ledger))


def ledger_rows_insert(rows: Sequence[LedgerRow], *, tables: ReadModelTables = LIVE_TABLES) -> None:
    """Insert ledger rows (LedgerRows, or anything with a LedgerEntry's attributes) in one statement."""
    ledger_writer(tables).write(rows)


def account_summaries_upsert(summaries: Sequence[AccountSummary], *, tables: ReadModelTables = LIVE_TABLES) -> None:
    """Insert the new summaries and update the others (by id) in one statement."""
    summary_writer(tables).write(summaries)


def ledger_writer(tables: ReadModelTables = LIVE_TABLES) -> "RowWriter":
    return RowWriter(LedgerEntry, LEDGER_COLUMNS, table=tables.ledger)


def summary_writer(tables: ReadModelTables = LIVE_TABLES) -> "RowWriter":
    return RowWriter(AccountSummary, ("id", *SUMMARY_FIELDS), update=SUMMARY_FIELDS, table=tables.summary)


def account_summaries_for_update(ids: list[UUID], tables: ReadModelTables = LIVE_TABLES) -> dict[UUID, AccountSummary]:
    """The existing summaries among `ids` (in `tables`), locked until the transaction ends.

    Locked in id order, so that two batches sharing accounts wait for each other instead of deadlocking.
    Raw SQL, because the table may be a rebuild's copy, which has no model; the rows still come back as
    AccountSummary instances, converted as the ORM converts them.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    pk = AccountSummary._meta.pk
    columns = ", ".join(quote(AccountSummary._meta.get_field(name).column) for name in ("id", *SUMMARY_FIELDS))
    for_update = " FOR UPDATE" if connection.features.has_select_for_update else ""
    ids = sorted(ids)
    found: dict[UUID, AccountSummary] = {}
    for start in range(0, len(ids), LOCK_CHUNK_SIZE):
        chunk = ids[start : start + LOCK_CHUNK_SIZE]
        marks = ", ".join(["%s"] * len(chunk))
        locked = AccountSummary.objects.raw(
            f"SELECT {columns} FROM {quote(tables.summary)} WHERE {quote(pk.column)} IN ({marks}) "
            f"ORDER BY {quote(pk.column)}{for_update}",
            [pk.get_db_prep_value(account_id, connection) for account_id in chunk],
        )
        found.update((summary.id, summary) for summary in locked)
    return found


def is_deadlock(error: OperationalError) -> bool:
    """MySQL/MariaDB picked this transaction as a deadlock's victim (and rolled it back)."""
    return connections[DEFAULT_DB_ALIAS].vendor == "mysql" and bool(error.args) and error.args[0] == MYSQL_DEADLOCK


class RowWriter:
    """Writes rows of a model with the driver's executemany.

    The read side writes a row per event: a model instance for each, and
    bulk_create preparing every value through its field, cost more than all
    the rest of the projection (three quarters of a live batch's time). Here
    the values are read off the objects' attributes a column at a time, and
    each column goes through one cheap conversion, the one its field would
    make (see _driver_values). With `update`, a row whose primary key is taken
    updates those columns instead (an upsert, in the database's own dialect).
    """

    def __init__(
        self,
        model,
        columns: Sequence[str],
        *,
        update: Sequence[str] = (),
        table: str | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ):
        self.connection = connections[using]
        ops = self.connection.ops
        fields = [model._meta.get_field(name) for name in columns]
        names, values = ", ".join(ops.quote_name(field.column) for field in fields), ", ".join(["%s"] * len(fields))
        self.sql = f"INSERT INTO {ops.quote_name(table or model._meta.db_table)} ({names}) VALUES ({values})"
        if update:
            updated = [model._meta.get_field(name).column for name in update]
            self.sql += " " + ops.on_conflict_suffix_sql(fields, OnConflict.UPDATE, updated, [model._meta.pk.column])
        self.getters = [attrgetter(field.attname) for field in fields]
        self.conversions = [_driver_values(field, self.connection) for field in fields]

    def write(self, objects: Sequence) -> None:
        self.execute(self.rows(objects))

    def rows(self, objects: Sequence) -> list[tuple]:
        """The objects' values as the driver takes them (no database access: any thread may ask)."""
        columns = [
            map(getter, objects) if convert is None else map(convert, map(getter, objects))
            for getter, convert in zip(self.getters, self.conversions, strict=True)
        ]
        return list(zip(*columns, strict=True))

    def execute(self, rows: list[tuple]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(self.sql, rows)


def _driver_values(field, connection) -> Callable | None:
    """What field.get_db_prep_save(value, connection) does for this field's type, cheaply (None: nothing to do)."""
    kind = (field.target_field if field.is_relation else field).get_internal_type()
    if kind in ("CharField", "PositiveIntegerField", "IntegerField", "BigIntegerField"):
        return None
    if kind == "UUIDField":
        return None if connection.features.has_native_uuid_field else attrgetter("hex")
    if kind == "DateTimeField":
        return connection.ops.adapt_datetimefield_value
    if kind == "DecimalField":
        return partial(
            connection.ops.adapt_decimalfield_value, max_digits=field.max_digits, decimal_places=field.decimal_places
        )
    return partial(field.get_db_prep_save, connection=connection)


@contextmanager
def sqlite_page_cache(kib: int = SQLITE_REPLAY_CACHE_KIB, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """On SQLite, a page cache of `kib` KiB for the connection while this lasts (elsewhere, nothing).

    A replay makes millions of inserts at random places of the ledger's
    indexes: they thrash SQLite's default 2 MB cache (twice the CPU time, and
    pages spilled to disk). Memory grows by up to `kib`, whatever the number of events.
    """
    connection = connections[using]
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (previous,) = cursor.fetchone()
        cursor.execute(f"PRAGMA cache_size = -{int(kib)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(previous)}")


# What the rebuild does once the copies are swapped in (or, on SQLite, just before): catch `target` up
# with the store, and with whatever `reference` holds further along (projections.rebuild).
CatchUp = Callable[[ReadModelTables, ReadModelTables], None]


def vendor_tables(connection) -> "SqliteTables | MysqlTables":
    if connection.vendor == "sqlite":
        return SqliteTables(connection)
    if connection.vendor == "mysql":
        return MysqlTables(connection)
    raise NotImplementedError(f"rebuilding the read model on {connection.vendor} (SQLite and MySQL/MariaDB only)")


class VendorTables:
    """What a rebuild does to the read model's tables that each database does its own way."""

    def __init__(self, connection):
        self.connection = connection
        self.quote = connection.ops.quote_name

    def drop(self, tables: ReadModelTables) -> None:
        with self.connection.cursor() as cursor:
            for table in (tables.summary, tables.ledger):
                cursor.execute(f"DROP TABLE IF EXISTS {self.quote(table)}")


class SqliteTables(VendorTables):
    def create_copies(self) -> None:
        """Tables as the live ones were created (their own CREATE TABLE, renamed), without secondary indexes."""
        with self.connection.cursor() as cursor:
            for live, copy in LIVE_AND_COPY:
                cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [live])
                (create,) = cursor.fetchone()
                prefix = f"CREATE TABLE {self.quote(live)} "
                if not create.startswith(prefix):
                    raise RuntimeError(f"unexpected definition of {live}: {create[:80]}")
                cursor.execute(f"CREATE TABLE {self.quote(copy)} " + create[len(prefix) :])

    def swap_in(self, *, catch_up: CatchUp, still_ours: Callable[[], None]) -> None:
        # IMMEDIATE (settings.SQLITE_OPTIONS): the write lock from the start, so no
        # projection runs between the last catch-up and the swap.
        started = time.monotonic()
        with transaction.atomic(using=self.connection.alias):
            catch_up(COPY_TABLES, LIVE_TABLES)
            with self.connection.cursor() as cursor:
                for live, copy in LIVE_AND_COPY:
                    cursor.execute(
                        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
                        [live],
                    )
                    indexes = [sql for (sql,) in cursor.fetchall()]
                    cursor.execute(f"DROP TABLE {self.quote(live)}")
                    cursor.execute(f"ALTER TABLE {self.quote(copy)} RENAME TO {self.quote(live)}")
                    for create_index in indexes:  # under their own names, now free again
                        cursor.execute(create_index)
        logger.info("rebuild: swapped in; writers waited for %.2f s", time.monotonic() - started)


class MysqlTables(VendorTables):
    def create_copies(self) -> None:
        with self.connection.cursor() as cursor:
            for live, copy in LIVE_AND_COPY:
                cursor.execute(f"CREATE TABLE {self.quote(copy)} LIKE {self.quote(live)}")

    def swap_in(self, *, catch_up: CatchUp, still_ours: Callable[[], None]) -> None:
        q = self.quote
        rename = (
            f"RENAME TABLE {q(LIVE_TABLES.summary)} TO {q(RETIRED_TABLES.summary)}, "
            f"{q(COPY_TABLES.summary)} TO {q(LIVE_TABLES.summary)}, "
            f"{q(LIVE_TABLES.ledger)} TO {q(RETIRED_TABLES.ledger)}, "
            f"{q(COPY_TABLES.ledger)} TO {q(LIVE_TABLES.ledger)}"
        )
        started = time.monotonic()
        with self.connection.cursor() as cursor:
            cursor.execute("SET SESSION lock_wait_timeout = %s", [SWAP_LOCK_WAIT_SECONDS])
            try:
                for attempt in range(1, SWAP_ATTEMPTS + 1):
                    try:
                        cursor.execute(rename)
                        break
                    except OperationalError as error:
                        if error.args[:1] != (MYSQL_LOCK_WAIT_TIMEOUT,) or attempt == SWAP_ATTEMPTS:
                            raise
                        logger.info("rebuild: the swap waited for a long transaction (attempt %d); again", attempt)
                        still_ours()
            finally:
                cursor.execute("SET SESSION lock_wait_timeout = DEFAULT")
        logger.info("rebuild: swapped in (the RENAME took %.2f s)", time.monotonic() - started)
        # The live projection wrote the old tables until the swap: what it applied
        # there after the last catch-up is applied to the new ones now, beside it.
        catch_up(LIVE_TABLES, RETIRED_TABLES)
        self.drop(RETIRED_TABLES)

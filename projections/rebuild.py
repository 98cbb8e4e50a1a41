"""Rebuilding the read model from the event store, blue/green, as a job.

The new read model is built beside the live one, in copies of its tables,
while the live one keeps serving and keeps being projected:

1. replay every stored event in memory (projections.replay) and write the
   copies a batch at a time, each batch a short transaction of its own;
2. catch the copies up from the store position the replay reached, until a
   round finds little new;
3. swap the copies in, in one step, and apply whatever the live projection
   applied to the old tables that the copies may lack;
4. drop the old tables.

Step 3 relies on the projection being idempotent per account version and
filling gaps from the store: an account is caught up by reading its stream
after the version the new tables hold. Which accounts: those the store
delivered after the recorded position, and those the old tables hold further
along than the new ones (on a database server, a writer may commit an earlier
position after a later one was read, so positions alone could miss an event).

SQLite: the swap is one IMMEDIATE transaction (no writer runs meanwhile) that
catches up, drops the old tables and renames the copies; it then makes the
live tables' secondary indexes again under their own names (SQLite index
names are per database, so the copies could not carry them). MySQL/MariaDB:
one multi-table RENAME TABLE (atomic; it waits for transactions on the live
tables to end), then the catch-up runs on the new live tables beside the live
projection, and the old tables are dropped.

One rebuild at a time: a job row with a unique `running` flag (RebuildJob).
A job whose process died stops beating; after ABANDONED_AFTER another may
start, and the old one, if it wakes, finds it no longer owns the job and stops.
"""

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import islice
from typing import Any
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, Error, IntegrityError, connections, transaction
from django.utils import timezone

from eventstore.store import EventStore
from projections import dead_letters
from projections.adapters.read_model_writer import (
    COPY_TABLES,
    RETIRED_TABLES,
    ReadModelTables,
    ledger_writer,
    sqlite_page_cache,
    summary_writer,
    vendor_tables,
)
from projections.models import AccountSummary, DeadLetterSource, RebuildJob, RebuildStatus
from projections.projection import project_from_store
from projections.replay import REPLAY_BATCH_SIZE, Replay, read_ahead

logger = logging.getLogger(__name__)

# A running job that has shown no progress for this long was abandoned (its process died).
ABANDONED_AFTER = timedelta(minutes=2)
# Catch-up rounds before the swap; a round that finds fewer new events than CATCH_UP_QUIET ends them.
CATCH_UP_ROUNDS = 5
CATCH_UP_QUIET = 1_000


class RebuildAlreadyRunning(Exception):
    def __init__(self, job: RebuildJob):
        self.job = job
        super().__init__(
            f"A rebuild of the read model is already running (rebuild {job.id}, started "
            f"{job.started_at:%Y-%m-%d %H:%M:%S} UTC); try again when it has finished."
        )


class RebuildNotStarted(Exception):
    """The job could not be handed to whatever runs it (the worker's broker is down): it is marked failed."""


class RebuildAbandoned(Exception):
    """This job was declared abandoned (it showed no progress for too long): another rebuild may run now."""


def rebuild_job_start(*, requested_by: str = "") -> RebuildJob:
    """Claim the one place for a running rebuild; raises RebuildAlreadyRunning if it is taken.

    The job is then run by rebuild_job_run, here or elsewhere (a thread, a Celery task).
    """
    now = timezone.now()
    abandoned = RebuildJob.objects.filter(running=True, heartbeat_at__lt=now - ABANDONED_AFTER).update(
        status=RebuildStatus.FAILED,
        running=None,
        finished_at=now,
        error=f"abandoned: no progress for {ABANDONED_AFTER.total_seconds():.0f} s (the process running it stopped)",
    )
    if abandoned:
        logger.warning("rebuild: a running rebuild showed no progress for %s; marked failed", ABANDONED_AFTER)
    try:
        with transaction.atomic():
            return RebuildJob.objects.create(requested_by=requested_by[:150], started_at=now, heartbeat_at=now)
    except IntegrityError:
        running = RebuildJob.objects.filter(running=True).first()
        if running is None:  # it ended in between
            return rebuild_job_start(requested_by=requested_by)
        raise RebuildAlreadyRunning(running) from None


def rebuild_job_not_started(*, job_id: UUID, reason: str) -> None:
    """Mark a started job failed before it ran (it could not be handed over), so the next rebuild may start."""
    RebuildJob.objects.filter(pk=job_id, running=True).update(
        status=RebuildStatus.FAILED, running=None, finished_at=timezone.now(), error=f"not started: {reason}"[:10_000]
    )


def rebuild_job_run(
    *, job_id: UUID, event_store: EventStore, on_progress: Callable[[int], None] = lambda n: None
) -> RebuildJob:
    """Run a started job to its end: rebuild, then record how it ended. What failed is raised too."""
    progress = _JobProgress(job_id, on_progress)
    try:
        _rebuild_blue_green(event_store, progress)
        accounts = AccountSummary.objects.count()
    except BaseException as error:
        _job_finish(job_id, RebuildStatus.FAILED, progress, error=f"{type(error).__name__}: {error}")
        raise
    _job_finish(job_id, RebuildStatus.SUCCEEDED, progress, accounts=accounts)
    return RebuildJob.objects.get(pk=job_id)


def rebuild_read_model(
    *, event_store: EventStore, on_progress: Callable[[int], None] = lambda n: None, requested_by: str = ""
) -> tuple[int, int]:
    """Start a rebuild job and run it here, to the end; returns (events replayed, accounts).

    `on_progress` is told how many more events were replayed, a batch at a time.
    """
    job = rebuild_job_start(requested_by=requested_by)
    job = rebuild_job_run(job_id=job.pk, event_store=event_store, on_progress=on_progress)
    return job.events_done, job.accounts


class _JobProgress:
    """Counts the events done, and shows the job alive (its heartbeat) each time; stops if it lost the job."""

    def __init__(self, job_id: UUID, on_progress: Callable[[int], None]):
        self.job_id = job_id
        self.on_progress = on_progress
        self.done = 0
        self.total = 0

    def expect(self, total: int) -> None:
        self.total = total
        self.beat()

    def advance(self, events: int) -> None:
        self.done += events
        self.total = max(self.total, self.done)  # the store grew meanwhile
        self.beat()
        self.on_progress(events)

    def beat(self) -> None:
        owned = RebuildJob.objects.filter(pk=self.job_id, running=True).update(
            events_done=self.done, events_total=self.total, heartbeat_at=timezone.now()
        )
        if not owned:
            raise RebuildAbandoned(f"rebuild {self.job_id} is no longer running (declared abandoned); stopping")


def _job_finish(job_id: UUID, status: str, progress: _JobProgress, *, accounts: int | None = None, error: str = ""):
    try:
        RebuildJob.objects.filter(pk=job_id, running=True).update(
            status=status,
            running=None,
            finished_at=timezone.now(),
            events_done=progress.done,
            events_total=progress.total,
            accounts=accounts,
            error=error[:10_000],
        )
    except Error:  # the database is down: the job stops beating, and is taken over as abandoned later
        logger.exception("rebuild %s: could not record that it ended (%s)", job_id, status)


def _rebuild_blue_green(event_store: EventStore, progress: _JobProgress) -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.in_atomic_block:
        raise RuntimeError("a rebuild runs short transactions of its own: call it outside a transaction")
    progress.beat()  # still ours: a job declared abandoned must not touch another's tables
    tables = vendor_tables(connection)
    tables.drop(COPY_TABLES)  # what a rebuild that died left behind
    tables.drop(RETIRED_TABLES)
    tables.create_copies()
    try:
        replay = Replay()
        progress.expect(event_store.count_events())
        with sqlite_page_cache():  # the replay's inserts, and on SQLite the swap's index builds
            position = _replay_into(COPY_TABLES, replay, event_store, progress)
            for _ in range(CATCH_UP_ROUNDS):
                caught_up, position = _catch_up(COPY_TABLES, event_store, position, progress)
                if caught_up < CATCH_UP_QUIET:
                    break
            tables.swap_in(
                catch_up=lambda target, reference: _catch_up_before_or_after_the_swap(
                    target, reference, event_store, position, progress
                ),
                still_ours=progress.beat,
            )
    except RebuildAbandoned:
        raise  # the copies are the next rebuild's now
    except BaseException:
        try:
            tables.drop(COPY_TABLES)
        except Error:
            logger.exception("rebuild: could not drop the copies (the next rebuild drops them)")
        raise
    if replay.poison:
        logger.warning(
            "rebuild: %d account(s) stopped at an event that cannot be applied (see Dead letters)", len(replay.poison)
        )


def _replay_into(tables: ReadModelTables, replay: Replay, event_store: EventStore, progress: _JobProgress) -> int:
    """Replay the whole store into `tables` (empty), a batch per transaction; returns the position it reached."""
    ledger = ledger_writer(tables)
    # With a database server, the store is read, replayed and made into rows a batch
    # ahead, in a thread of its own (with a connection of its own), while the server
    # writes the batch before: their work overlaps (MariaDB: 15% faster). SQLite writes
    # in this process, mostly holding the GIL: a thread would only compete (20% slower).
    batches: Iterator[tuple[list[tuple[Any, ...]], int]] = (
        (ledger.rows(entries), replayed) for entries, replayed in replay.batches(event_store)
    )
    if ledger.connection.vendor != "sqlite":
        batches = read_ahead(batches)
    for rows, replayed in batches:
        with transaction.atomic():
            ledger.execute(rows)
        progress.advance(replayed)
    with transaction.atomic():
        ledger.write(replay.fill_gaps(event_store))
    projected = replay.projected()
    summaries = summary_writer(tables)
    for start in range(0, len(projected), REPLAY_BATCH_SIZE):
        with transaction.atomic():
            summaries.write(projected[start : start + REPLAY_BATCH_SIZE])
        progress.beat()
    for failure in replay.poison:
        dead_letters.dead_letter_event(event=failure.event, cause=failure.cause, source=DeadLetterSource.REBUILD)
    return replay.position


def _catch_up(
    tables: ReadModelTables, event_store: EventStore, position: int, progress: _JobProgress
) -> tuple[int, int]:
    """Project into `tables` what the store holds after `position`; returns (how many events, the new position)."""
    caught_up = 0
    events = event_store.read_all(after_position=position, batch_size=REPLAY_BATCH_SIZE)
    while batch := list(islice(events, REPLAY_BATCH_SIZE)):
        project_from_store(events=batch, event_store=event_store, source=DeadLetterSource.REBUILD, tables=tables)
        position = max(position, batch[-1].position or 0)
        caught_up += len(batch)
        progress.advance(len(batch))
    return caught_up, position


def _catch_up_before_or_after_the_swap(
    target: ReadModelTables, reference: ReadModelTables, event_store: EventStore, position: int, progress: _JobProgress
) -> None:
    """Catch `target` up with the store after `position`, then with every account `reference` holds further along."""
    _catch_up(target, event_store, position, progress)
    _catch_up_accounts_further_along(target=target, reference=reference, event_store=event_store, progress=progress)


def _catch_up_accounts_further_along(
    *, target: ReadModelTables, reference: ReadModelTables, event_store: EventStore, progress: _JobProgress
) -> int:
    """Catch up, in `target`, every account that `reference` holds at a later version (or at all); returns how many.

    From the store, never from `reference`: whatever `reference` holds (a damaged read
    model, say) only says which accounts to look at.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id, COALESCE(t.version, 0) FROM {quote(reference.summary)} r "
            f"LEFT JOIN {quote(target.summary)} t ON t.id = r.id WHERE t.id IS NULL OR t.version < r.version"
        )
        behind = cursor.fetchall()
    for done, (account_id, version) in enumerate(behind, start=1):
        if done % 1_000 == 0:
            progress.beat()
        stream_id = str(UUID(str(account_id)))
        events = event_store.load_stream(stream_id, after_version=version)
        if events:
            project_from_store(events=events, event_store=event_store, source=DeadLetterSource.REBUILD, tables=target)
    return len(behind)

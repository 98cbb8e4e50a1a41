"""The MongoDB event store, through mongoengine.

Four collections, named like the SQL tables:
- `event_store`: one document per event, never updated; `_id` is the global
  position, and a unique (stream_id, version) index is the concurrency guard.
- `event_store_outbox`: one document per event not yet published.
- `event_store_counters`: the counter that hands out positions.
- `event_store_snapshots`: the latest snapshot of each stream (`_id` is the
  stream id), a cache (MongoSnapshotStore).

mongoengine (0.29) has no sessions, so an append goes through pymongo inside a
multi-document transaction; the documents still come from, and are validated
by, the mongoengine classes below. Transactions need a replica set (a
single-node one will do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from operator import attrgetter

import mongoengine
from mongoengine import DateTimeField, DictField, Document, IntField, LongField, StringField, UUIDField
from mongoengine.connection import get_connection, get_db
from mongoengine.queryset import QuerySet
from pymongo import ReturnDocument, uri_parser
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from eventstore.snapshots import Snapshot, SnapshotStore
from eventstore.store import ConcurrencyConflict, EventStore, NewEvent, StoredEvent

DUPLICATE_KEY = 11000
POSITION_COUNTER = "position"
# How long one append keeps retrying its transaction on write conflicts (every
# append writes the position counter, so concurrent appends collide) before it
# gives up as a ConcurrencyConflict. The command bus then reloads the account
# and retries, and a client that keeps losing gets a 409 it can act on, instead
# of pymongo retrying for 120 s (past gunicorn's 60 s worker timeout) and a 500.
WRITE_CONFLICT_SECONDS = 20.0

# The documents are bound to a store's connection alias by MongoEventStore
# (a QuerySet over that store's collection), not through `.objects`, so one
# process can hold stores on several databases without switching class state.


class EventDocument(Document):
    position = LongField(primary_key=True)
    event_id = UUIDField(binary=True, required=True, unique=True)
    stream_id = StringField(required=True, max_length=64)
    version = IntField(required=True, min_value=1)
    event_type = StringField(required=True, max_length=100)
    data = DictField()
    metadata = DictField()
    # BSON dates hold milliseconds: the date stays a real date for queries and
    # tools, and the microsecond is kept beside it so the time round-trips.
    occurred_at = DateTimeField(required=True)
    occurred_at_microsecond = IntField(required=True, min_value=0, max_value=999_999)
    recorded_at = DateTimeField(required=True)

    meta = {
        "collection": "event_store",
        "indexes": [{"fields": ["stream_id", "version"], "unique": True, "name": "stream_version_unique"}],
        "auto_create_index": False,
    }


class OutboxDocument(Document):
    position = LongField(primary_key=True)
    event_id = UUIDField(binary=True, required=True, unique=True)

    meta = {"collection": "event_store_outbox", "auto_create_index": False}


class CounterDocument(Document):
    name = StringField(primary_key=True)
    value = LongField(required=True, min_value=0)

    meta = {"collection": "event_store_counters", "auto_create_index": False}


class SnapshotDocument(Document):
    stream_id = StringField(primary_key=True, max_length=64)
    version = IntField(required=True, min_value=1)
    schema = StringField(required=True, max_length=64)
    state = DictField()
    taken_at = DateTimeField(required=True)

    meta = {"collection": "event_store_snapshots", "auto_create_index": False}


def _to_stored(doc: EventDocument) -> StoredEvent:
    occurred_at = doc.occurred_at.astimezone(UTC)
    return StoredEvent(
        event_id=doc.event_id,
        stream_id=doc.stream_id,
        version=doc.version,
        event_type=doc.event_type,
        data=_plain(doc.data),
        occurred_at=occurred_at.replace(microsecond=doc.occurred_at_microsecond),
        metadata=_plain(doc.metadata),
        position=doc.position,
    )


def _from_raw(doc: dict) -> StoredEvent:
    """_to_stored for a document as pymongo returns it (a dict), without building a mongoengine Document."""
    occurred_at = doc["occurred_at"].astimezone(UTC)
    return StoredEvent(
        event_id=doc["event_id"],
        stream_id=doc["stream_id"],
        version=doc["version"],
        event_type=doc["event_type"],
        data=doc.get("data", {}),
        occurred_at=occurred_at.replace(microsecond=doc["occurred_at_microsecond"]),
        metadata=doc.get("metadata", {}),
        position=doc["_id"],
    )


def _plain(value):
    """mongoengine's tracked BaseDict/BaseList, back to the dicts and lists we were given."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_duplicate_key(error: Exception) -> bool:
    if isinstance(error, DuplicateKeyError):
        return True
    if isinstance(error, BulkWriteError):
        write_errors = error.details.get("writeErrors", [])
        return bool(write_errors) and all(e.get("code") == DUPLICATE_KEY for e in write_errors)
    return False


class _CommittedVersions:
    """How far each stream is known to reach, from this store's own commits; bounded, the oldest forgotten first.

    Events are never deleted, so a stream that reached version N still has
    versions 1..N: an append after one of them needs no gap check (a query).
    """

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def reaches(self, stream_id: str, version: int) -> bool:
        return self._versions.get(stream_id, 0) >= version

    def record(self, stream_id: str, version: int) -> None:
        with self._lock:
            self._versions[stream_id] = max(version, self._versions.pop(stream_id, 0))  # the latest last
            while len(self._versions) > self.limit:
                del self._versions[next(iter(self._versions))]

    def clear(self) -> None:
        with self._lock:
            self._versions.clear()


class MongoEventStore(EventStore):
    def __init__(self, *, url: str, alias: str = "eventstore"):
        if not uri_parser.parse_uri(url)["database"]:
            # The URL itself is left out of the message: it may carry a password.
            raise ValueError("Name the event store's database in the URL's path, e.g. mongodb://host:27017/techbank")
        self.alias = alias
        # Standard UUIDs (not pymongo's legacy byte order), and aware datetimes.
        mongoengine.connect(alias=alias, host=url, uuidRepresentation="standard", tz_aware=True)
        self._client = get_connection(alias)
        db = get_db(alias)
        self._event_collection = db[EventDocument._get_collection_name()]
        self._outbox_collection = db[OutboxDocument._get_collection_name()]
        self._counter_collection = db[CounterDocument._get_collection_name()]
        self._snapshot_collection = db[SnapshotDocument._get_collection_name()]
        self._committed = _CommittedVersions()
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        for document, collection in (
            (EventDocument, self._event_collection),
            (OutboxDocument, self._outbox_collection),
        ):
            for spec in document._meta["index_specs"]:
                spec = dict(spec)
                collection.create_index(spec.pop("fields"), **spec)
        # Created before anyone increments it: concurrent upserts of a missing
        # document can both insert, so appends only ever $inc an existing one.
        counter = CounterDocument(name=POSITION_COUNTER, value=0)
        counter.validate()
        try:
            self._counter_collection.insert_one(counter.to_mongo())
        except DuplicateKeyError:
            pass  # it exists: keep its value

    def close(self) -> None:
        mongoengine.disconnect(alias=self.alias)

    def drop_everything(self) -> None:
        """For tests: drop the store's collections (indexes, counter and all)."""
        for collection in (
            self._event_collection,
            self._outbox_collection,
            self._counter_collection,
            self._snapshot_collection,
        ):
            collection.drop()
        self._committed.clear()

    def _events(self) -> QuerySet:
        return QuerySet(EventDocument, self._event_collection)

    def _outbox(self) -> QuerySet:
        return QuerySet(OutboxDocument, self._outbox_collection)

    def append(self, stream_id, expected_version, events: Sequence[NewEvent]):
        if not events:
            return []  # nothing to store, so nothing to guard
        started = time.monotonic()

        def store_all_or_nothing(session) -> list[EventDocument]:
            if time.monotonic() - started > WRITE_CONFLICT_SECONDS:  # a retry after too many write conflicts
                raise ConcurrencyConflict(stream_id, expected_version)
            # The unique (stream_id, version) index settles races; this only
            # refuses an expected version beyond the stream's end (a gap),
            # unless this store has seen the stream reach it.
            seen = self._committed.reaches(stream_id, expected_version)
            if (
                expected_version
                and not seen
                and not self._event_collection.find_one(
                    {"stream_id": stream_id, "version": expected_version}, projection={"_id": 1}, session=session
                )
            ):
                raise ConcurrencyConflict(stream_id, expected_version)
            # Taking positions inside the transaction makes every append write
            # the counter, so appends commit one at a time in position order
            # (the others hit a write conflict and are retried): a reader that
            # resumes after position N can never miss an event below N that
            # committed later. An aborted append gives its positions back.
            counter = self._counter_collection.find_one_and_update(
                {"_id": POSITION_COUNTER},
                {"$inc": {"value": len(events)}},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if counter is None:
                raise RuntimeError("The event store's position counter is missing: construct the store to recreate it")
            first_position = counter["value"] - len(events) + 1
            recorded_at = datetime.now(UTC)
            docs = [
                self._new_document(stream_id, expected_version + i, first_position + i, event, recorded_at)
                for i, event in enumerate(events)
            ]
            self._event_collection.insert_many([d.to_mongo() for d in docs], session=session)
            outbox = [OutboxDocument(position=d.position, event_id=d.event_id) for d in docs]
            self._outbox_collection.insert_many([o.to_mongo() for o in outbox], session=session)
            return docs

        try:
            with self._client.start_session() as session:
                # Retries the whole callback on transient errors (write conflicts).
                docs = session.with_transaction(
                    store_all_or_nothing,
                    read_concern=ReadConcern("snapshot"),
                    write_concern=WriteConcern("majority"),
                )
        except (DuplicateKeyError, BulkWriteError) as error:
            if _is_duplicate_key(error):
                raise ConcurrencyConflict(stream_id, expected_version) from None
            raise
        except PyMongoError as error:
            # pymongo gave up retrying write conflicts (its 120 s limit): nothing was stored.
            if error.has_error_label("TransientTransactionError"):
                raise ConcurrencyConflict(stream_id, expected_version) from None
            raise
        self._committed.record(stream_id, docs[-1].version)
        return [_to_stored(d) for d in docs]

    @staticmethod
    def _new_document(stream_id, previous_version, position, event: NewEvent, recorded_at) -> EventDocument:
        if event.occurred_at.tzinfo is None:
            raise ValueError(f"occurred_at must be timezone-aware (event {event.event_id})")
        occurred_at = event.occurred_at.astimezone(UTC)
        doc = EventDocument(
            position=position,
            event_id=event.event_id,
            stream_id=stream_id,
            version=previous_version + 1,
            event_type=event.event_type,
            data=event.data,
            metadata=event.metadata,
            occurred_at=occurred_at,
            occurred_at_microsecond=occurred_at.microsecond,
            recorded_at=recorded_at,
        )
        doc.validate()
        return doc

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        # Straight from pymongo, as read_all: a mongoengine Document per event was
        # most of the time a load took. Sorted here, not by the server: the unique
        # (stream_id, version) index already yields them in order (so this sort is
        # linear), and a server that sorts anyway (the tests' stand-in) spent more
        # on its sort than on the query.
        query = {"stream_id": stream_id, "version": {"$gt": after_version}}
        if limit is not None:
            # A page: the server must sort to know which events come first, and
            # returns only those (on the (stream_id, version) index, no sort stage).
            cursor = self._event_collection.find(query, sort=[("version", 1)], limit=limit)
            return [_from_raw(doc) for doc in cursor]
        cursor = self._event_collection.find(query)
        return sorted((_from_raw(doc) for doc in cursor), key=attrgetter("version"))

    def stream_version(self, stream_id):
        latest = self._event_collection.find_one(
            {"stream_id": stream_id}, projection={"version": 1, "_id": 0}, sort=[("version", -1)]
        )
        return 0 if latest is None else latest["version"]

    def read_all(self, after_position=0, batch_size=1000) -> Iterator[StoredEvent]:
        # Straight from pymongo: building a mongoengine Document per event cost
        # more than everything else in a replay of the whole store.
        while True:
            cursor = self._event_collection.find(
                {"_id": {"$gt": after_position}}, sort=[("_id", 1)], limit=batch_size, batch_size=batch_size
            )
            batch = [_from_raw(doc) for doc in cursor]
            if not batch:
                return
            yield from batch
            after_position = batch[-1].position

    def count_events(self):
        return self._events().count()

    def unpublished(self, limit=500):
        positions = list(self._outbox().order_by("position").limit(limit).scalar("position"))
        if not positions:
            return []
        docs = self._events().filter(position__in=positions).order_by("position")
        return [_to_stored(d) for d in docs]

    def mark_published(self, event_ids):
        self._outbox().filter(event_id__in=list(event_ids)).delete()


class MongoSnapshotStore(SnapshotStore):
    """Snapshots in the event store's database, beside its events: one document per stream."""

    def __init__(self, event_store: MongoEventStore):
        self._collection = event_store._snapshot_collection

    def get(self, stream_id):
        doc = self._collection.find_one({"_id": stream_id}, projection={"taken_at": 0})
        return None if doc is None else Snapshot(stream_id, doc["version"], doc["schema"], doc.get("state", {}))

    def save(self, snapshot):
        doc = SnapshotDocument(
            stream_id=snapshot.stream_id,
            version=snapshot.version,
            schema=snapshot.schema,
            state=snapshot.state,
            taken_at=datetime.now(UTC),
        )
        doc.validate()
        fields = doc.to_mongo().to_dict()
        del fields["_id"]
        try:
            # Matches only a stored snapshot that is not later; if there is none,
            # the upsert inserts, and if a later one exists, that insert is a duplicate key.
            self._collection.update_one(
                {"_id": snapshot.stream_id, "version": {"$lte": snapshot.version}}, {"$set": fields}, upsert=True
            )
        except DuplicateKeyError:
            pass  # a later snapshot is stored: keep it

    def delete(self, stream_id):
        self._collection.delete_one({"_id": stream_id})

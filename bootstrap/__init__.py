"""The composition root: builds the bank's services from settings, and hands them over.

`bootstrap()` returns a `Services`: the event store, the snapshot store, the
command bus (with its repository, publisher and snapshot policy) and, on the
full stack, the Kafka transport, the relay's lock and its wake-up channel.
Each part is built on first use, once (thread-safe), so building `Services`
costs nothing and connects to nothing: `manage.py migrate` never reaches
MongoDB. The entry points receive it (`entrypoints.wiring`): Django's app
ready, each Celery worker process at its start, and the management commands
through the installed one. Nothing here is global: a test builds its own.
"""

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from accounts.adapters.idempotency_records import DjangoIdempotencyRecords
from accounts.adapters.relay_nudge_publisher import RelayNudgePublisher
from accounts.adapters.repository import BankAccountRepository
from accounts.adapters.unit_of_work import EventStoreUnitOfWork
from accounts.service_layer.command_bus import CommandBus
from accounts.service_layer.idempotency import IdempotentRequests
from accounts.service_layer.publisher import EventPublisher
from accounts.service_layer.unit_of_work import RECENT_ACCOUNTS, UnitOfWork
from bootstrap.full_stack import kafka_authentication, relay_lock_for
from eventstore.nudges import RedisRelayNudges
from eventstore.snapshots import SnapshotStore
from eventstore.store import EventStore
from eventstore.transports.base import EventTransport

__all__ = ["Services", "bootstrap", "kafka_authentication"]

if TYPE_CHECKING:
    from projections.in_process_path import InProcessEventPath

T = TypeVar("T")
_NOT_BUILT = object()

EVENT_STORES = ("sql", "mongo")
# The parts a caller (a test, a benchmark) may hand bootstrap() ready-made instead of having them built from settings.
GIVEABLE = ("event_store", "snapshot_store", "transport", "relay_nudges")
EVENT_BUSES = ("inline", "kafka")


def _unknown(setting: str, value: str, choices: tuple[str, ...]) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{setting}={value!r} is not one of: {', '.join(choices)}")


class Services:
    """What the entry points use, each part built from `config` (Django's settings) when first asked for."""

    def __init__(self, config: Any, **given: Any):
        if config.TECHBANK_EVENT_STORE not in EVENT_STORES:
            raise _unknown("TECHBANK_EVENT_STORE", config.TECHBANK_EVENT_STORE, EVENT_STORES)
        if config.TECHBANK_EVENT_BUS not in EVENT_BUSES:
            raise _unknown("TECHBANK_EVENT_BUS", config.TECHBANK_EVENT_BUS, EVENT_BUSES)
        self.config = config
        # A fresh gunicorn worker's threads may all ask for a part at once; each must be built once
        # (two MongoEventStores racing through mongoengine's connection registry can end up with one
        # client's sessions and another client's collections, and every append then fails).
        self._building = threading.RLock()
        unknown = set(given) - set(GIVEABLE)
        if unknown:
            raise TypeError(f"bootstrap() cannot be given {', '.join(sorted(unknown))}; only {', '.join(GIVEABLE)}")
        self._built: dict[str, Any] = dict(given)  # parts the caller built itself

    @property
    def full_stack(self) -> bool:
        """Kafka carries the events (relay and consumer processes); else they are projected in process."""
        return self.config.TECHBANK_EVENT_BUS == "kafka"

    def _once(self, name: str, build: Callable[[], T]) -> T:
        built = self._built.get(name, _NOT_BUILT)  # every request asks: no lock once it is built
        if built is not _NOT_BUILT:
            return built
        with self._building:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    # -- the write side ------------------------------------------------------
    @property
    def event_store(self) -> EventStore:
        return self._once("event_store", self._build_event_store)

    def _build_event_store(self) -> EventStore:
        if self.config.TECHBANK_EVENT_STORE == "mongo":
            from eventstore.backends.mongo import MongoEventStore

            return MongoEventStore(url=self.config.TECHBANK_MONGO_URL)
        from eventstore.backends.django_orm import DjangoEventStore

        return DjangoEventStore()

    @property
    def snapshot_store(self) -> SnapshotStore:
        """Snapshots of long account streams, beside the events (same database)."""
        return self._once("snapshot_store", self._build_snapshot_store)

    def _build_snapshot_store(self) -> SnapshotStore:
        if self.config.TECHBANK_EVENT_STORE == "mongo":
            from eventstore.backends.mongo import MongoEventStore, MongoSnapshotStore

            store = self.event_store
            assert isinstance(store, MongoEventStore)  # the same setting chose both
            return MongoSnapshotStore(store)
        from eventstore.backends.django_orm import DjangoSnapshotStore

        return DjangoSnapshotStore()

    @property
    def account_repository(self) -> BankAccountRepository:
        return self._once(
            "account_repository",
            lambda: BankAccountRepository(
                self.event_store,
                self.snapshot_store,
                snapshot_every=self.config.TECHBANK_SNAPSHOT_EVERY,
                idempotency_ttl=self.idempotency_ttl,
            ),
        )

    @property
    def idempotency_ttl(self) -> timedelta:
        """How long an Idempotency-Key names one request: the one place that reads it."""
        return timedelta(hours=self.config.TECHBANK_IDEMPOTENCY_TTL_HOURS)

    @property
    def idempotent_requests(self) -> IdempotentRequests:
        """The idempotency step in front of the command bus, its records in the Django database."""
        return self._once(
            "idempotent_requests", lambda: IdempotentRequests(DjangoIdempotencyRecords(), ttl=self.idempotency_ttl)
        )

    @property
    def unit_of_work(self) -> UnitOfWork:
        """The command side's one unit of work: it keeps the accounts this process stored last."""
        return self._once(
            "unit_of_work", lambda: EventStoreUnitOfWork(self.account_repository, recent_accounts=RECENT_ACCOUNTS)
        )

    @property
    def bus(self) -> CommandBus:
        """The command bus: every command of the API, the admin and the scripts goes through it."""
        return self._once("bus", self._build_bus)

    def _build_bus(self) -> CommandBus:
        publisher: EventPublisher
        # Both stacks: once the command has committed, wake the relay. Full stack: a nudge to the
        # relay process; embedded: the relay and the consumer run now, in the command's thread.
        if self.full_stack:
            publisher = RelayNudgePublisher(lambda: self.relay_nudges.nudge())
        else:
            publisher = RelayNudgePublisher(self.in_process_event_path.relay_and_consume)
        return CommandBus(
            uow=self.unit_of_work, publisher=publisher, max_attempts=self.config.TECHBANK_COMMAND_MAX_ATTEMPTS
        )

    @property
    def in_process_event_path(self) -> "InProcessEventPath":
        """The embedded stack's relay and consumer (TECHBANK_EVENT_BUS=inline), over an in-process transport."""
        return self._once("in_process_event_path", self._build_in_process_event_path)

    def _build_in_process_event_path(self) -> "InProcessEventPath":
        from eventstore.in_process_relay_lock import InProcessRelayLock
        from eventstore.transports.in_process import InProcessTransport
        from projections.in_process_path import InProcessEventPath

        return InProcessEventPath(
            event_store=self.event_store, transport=InProcessTransport(), relay_lock=InProcessRelayLock()
        )

    # -- the full stack: Kafka, the relay ------------------------------------
    @property
    def transport(self) -> EventTransport:
        """The Kafka topic every account's events travel on (full stack only)."""
        return self._once("transport", self._build_transport)

    def _build_transport(self) -> EventTransport:
        if not self.full_stack:
            raise ImproperlyConfigured(
                f"TECHBANK_EVENT_BUS={self.config.TECHBANK_EVENT_BUS!r}: this stack has no Kafka topic "
                "(events are projected in process); set TECHBANK_EVENT_BUS=kafka for the full stack"
            )
        from eventstore.transports.kafka import KafkaTransport

        return KafkaTransport(
            self.config.TECHBANK_KAFKA_BOOTSTRAP, self.config.TECHBANK_KAFKA_TOPIC, **kafka_authentication(self.config)
        )

    def relay_lock(self, transport: EventTransport):
        """One relay at a time across all workers (bootstrap.full_stack.relay_lock_for)."""
        return relay_lock_for(transport, self.config)

    @property
    def relay_nudges(self) -> RedisRelayNudges:
        """Wakes the relay that follows the outbox (Redis pub/sub on Celery's Redis, one channel per topic)."""
        return self._once("relay_nudges", self._build_relay_nudges)

    def _build_relay_nudges(self) -> RedisRelayNudges:
        return RedisRelayNudges(
            self.config.CELERY_BROKER_URL, f"techbank:relay-nudge:{self.config.TECHBANK_KAFKA_TOPIC}"
        )

    def close(self) -> None:
        """Release what was built that holds connections (the transport's producer)."""
        with self._building:
            transport = self._built.pop("transport", None)
        if transport is not None:
            transport.close()


def bootstrap(config: Any = None, **given: Any) -> Services:
    """The bank's services as `config` (default: Django's settings) chooses them; parts are built when first used.

    `given` parts (GIVEABLE: an event store, a transport, ...) are used as they are, and the rest is built around them.
    """
    return Services(config if config is not None else django_settings, **given)

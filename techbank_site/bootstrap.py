"""The composition root: the one place that picks backends from settings."""

import logging
import os
import socket
import threading
from datetime import timedelta
from functools import cache, wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from accounts.adapters.publishers import RelayNudgePublisher
from accounts.adapters.repository import BankAccountRepository
from accounts.service_layer.command_bus import RECENT_ACCOUNTS, CommandBus
from accounts.service_layer.publisher import EventPublisher
from eventstore.snapshots import SnapshotStore
from eventstore.store import EventStore
from eventstore.transports.base import EventSubscription, EventTransport

logger = logging.getLogger(__name__)

# A fresh gunicorn worker's threads may all ask for a backend at once; each must be built once
# (two MongoEventStores racing through mongoengine's connection registry can end up with one
# client's sessions and another client's collections, and every append then fails).
_building = threading.RLock()


def _built_once(build):
    """functools.cache, safe when threads ask at the same time."""
    cached = cache(build)

    @wraps(build)
    def get():
        with _building:
            return cached()

    get.cache_clear = cached.cache_clear  # type: ignore[attr-defined]  # functools.cache's, kept on the wrapper
    return get


def _unknown(setting: str, value: str, choices: str) -> ValueError:
    return ValueError(f"{setting}={value!r} is not one of: {choices}")


@_built_once
def event_store() -> EventStore:
    backend = settings.TECHBANK_EVENT_STORE
    if backend == "sql":
        from eventstore.backends.django_orm import DjangoEventStore

        return DjangoEventStore()
    if backend == "mongo":
        from eventstore.backends.mongo import MongoEventStore

        return MongoEventStore(url=settings.TECHBANK_MONGO_URL)
    raise _unknown("TECHBANK_EVENT_STORE", backend, "sql, mongo")


@_built_once
def snapshot_store() -> SnapshotStore:
    """Snapshots of long account streams, beside the events (same database)."""
    backend = settings.TECHBANK_EVENT_STORE
    if backend == "sql":
        from eventstore.backends.django_orm import DjangoSnapshotStore

        return DjangoSnapshotStore()
    if backend == "mongo":
        from eventstore.backends.mongo import MongoSnapshotStore

        return MongoSnapshotStore(event_store())
    raise _unknown("TECHBANK_EVENT_STORE", backend, "sql, mongo")


@_built_once
def account_repository() -> BankAccountRepository:
    return BankAccountRepository(
        event_store(),
        snapshot_store(),
        snapshot_every=settings.TECHBANK_SNAPSHOT_EVERY,
        idempotency_ttl=timedelta(hours=settings.TECHBANK_IDEMPOTENCY_TTL_HOURS),
    )


@_built_once
def event_transport() -> EventTransport:
    from eventstore.transports.kafka import KafkaTransport

    if settings.TECHBANK_EVENT_BUS != "kafka":
        raise ImproperlyConfigured(
            f"TECHBANK_EVENT_BUS={settings.TECHBANK_EVENT_BUS!r}: this stack has no Kafka topic "
            "(events are projected in process); set TECHBANK_EVENT_BUS=kafka for the full stack"
        )
    return KafkaTransport(settings.TECHBANK_KAFKA_BOOTSTRAP, settings.TECHBANK_KAFKA_TOPIC, **kafka_authentication())


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def kafka_authentication() -> dict[str, Any]:
    """kafka-python's options for how every client of the app (producer, consumer, admin) signs in."""
    protocol = settings.TECHBANK_KAFKA_SECURITY_PROTOCOL
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise _unknown("TECHBANK_KAFKA_SECURITY_PROTOCOL", protocol, ", ".join(KAFKA_SECURITY_PROTOCOLS))
    if protocol == "PLAINTEXT":
        return {}
    mechanism = settings.TECHBANK_KAFKA_SASL_MECHANISM
    if mechanism not in KAFKA_SASL_MECHANISMS:
        raise _unknown("TECHBANK_KAFKA_SASL_MECHANISM", mechanism, ", ".join(KAFKA_SASL_MECHANISMS))
    if not (settings.TECHBANK_KAFKA_USERNAME and settings.TECHBANK_KAFKA_PASSWORD):
        raise ImproperlyConfigured(
            f"TECHBANK_KAFKA_SECURITY_PROTOCOL={protocol} needs TECHBANK_KAFKA_USERNAME and TECHBANK_KAFKA_PASSWORD"
        )
    # kafka-python takes the user in these two options for SCRAM as well as for PLAIN.
    return {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": settings.TECHBANK_KAFKA_USERNAME,
        "sasl_plain_password": settings.TECHBANK_KAFKA_PASSWORD,
    }


def _nudge_relay():
    relay_nudges().nudge()


# The embedded stack (TECHBANK_EVENT_BUS=inline): the relay and the consumer, run in the command's thread.
@_built_once
def in_process_event_path():
    from eventstore.in_process_relay_lock import InProcessRelayLock
    from eventstore.transports.in_process import InProcessTransport
    from projections.in_process_path import InProcessEventPath

    return InProcessEventPath(
        event_store=event_store(), transport=InProcessTransport(), relay_lock=InProcessRelayLock()
    )


@_built_once
def command_bus() -> CommandBus:
    backend = settings.TECHBANK_EVENT_BUS
    publisher: EventPublisher
    if backend == "inline":
        publisher = RelayNudgePublisher(in_process_event_path().relay_and_consume)
    elif backend == "kafka":
        publisher = RelayNudgePublisher(_nudge_relay)
    else:
        raise _unknown("TECHBANK_EVENT_BUS", backend, "inline, kafka")
    return CommandBus(
        accounts=account_repository(),
        publisher=publisher,
        max_attempts=settings.TECHBANK_COMMAND_MAX_ATTEMPTS,
        recent_accounts=RECENT_ACCOUNTS,
    )


def run_rebuild_in_background(job_id) -> None:
    """Run a started read-model rebuild (projections.rebuild) away from the request that started it.

    Full stack (Kafka bus): a Celery task. If the broker cannot take it, the job
    is marked failed (so it blocks no later rebuild) and RebuildNotStarted is raised.
    Embedded: a thread of this process (a rebuild writes in short
    transactions, so requests go on meanwhile; if the process stops, the job
    stops beating and the next rebuild takes over).
    """
    if settings.TECHBANK_EVENT_BUS == "kafka":
        from projections.rebuild import RebuildNotStarted, rebuild_job_not_started
        from projections.tasks import rebuild_read_model_task

        # The job row is committed (rebuild_job_start commits it): the worker may pick it up at once.
        try:
            rebuild_read_model_task.delay(str(job_id))
        except Exception as exc:  # kombu's OperationalError, or whatever the broker's client raised
            rebuild_job_not_started(job_id=job_id, reason=f"the worker's broker could not be reached ({exc})")
            raise RebuildNotStarted(f"the worker's broker could not be reached: {exc}") from exc
        return
    threading.Thread(target=_run_rebuild, args=(job_id,), name=f"rebuild-{job_id}", daemon=True).start()


def _run_rebuild(job_id) -> None:
    from django.db import connections

    from projections.rebuild import rebuild_job_run

    try:
        rebuild_job_run(job_id=job_id, event_store=event_store())
    except Exception:
        logger.exception("rebuild %s failed", job_id)  # and its job row says so
    finally:
        connections.close_all()  # this thread's own


def relay_lock(transport: EventTransport):
    """One relay at a time across all workers, so the outbox goes out in order.

    The relay renews it while it runs and confirms it before each batch
    (eventstore.relay); its timeout (TECHBANK_RELAY_LOCK_SECONDS) outlasts the
    longest send of `transport`, so a batch sent after a confirmation has gone
    out (or failed) before anyone else can take the lock, even if the lock's
    server is out of reach meanwhile. A relay that dies holding it holds the
    next one up for that long at most. Not thread-local: the renewing thread must be able to extend it.
    """
    import redis

    timeout = settings.TECHBANK_RELAY_LOCK_SECONDS
    longest_send = transport.longest_send_seconds()
    if timeout <= longest_send:
        raise ImproperlyConfigured(
            f"TECHBANK_RELAY_LOCK_SECONDS={timeout:g} must be longer than the longest send to Kafka "
            f"({longest_send:g} s), or a relay could still be sending when the next one takes over"
        )
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=5)
    return client.lock(f"techbank:relay-outbox:{settings.TECHBANK_KAFKA_TOPIC}", timeout=timeout, thread_local=False)


@_built_once
def relay_nudges():
    """Wakes the relay that follows the outbox (Redis pub/sub on Celery's Redis, one channel per topic)."""
    from eventstore.nudges import RedisRelayNudges

    return RedisRelayNudges(settings.CELERY_BROKER_URL, f"techbank:relay-nudge:{settings.TECHBANK_KAFKA_TOPIC}")


def worker_companions(worker: str) -> list[list[str]]:
    """The long-running management commands the Celery worker `worker` runs beside itself (techbank_site/celery.py).

    The consumer's static member id is the worker's name: a restarted worker takes its partitions back at once.
    """
    if settings.TECHBANK_EVENT_BUS == "kafka":
        return [["relay_outbox", "--follow"], ["run_projection_consumer", "--member-id", f"{worker}-projector"]]
    return []  # inline: the request's thread relays and consumes (in_process_event_path)


def projection_member_id() -> str:
    """Stable across restarts (host + pool slot), for static group membership."""
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    return f"{socket.gethostname()}-projector-{index if index is not None else os.getpid()}"


_subscription: EventSubscription | None = None


def projection_subscription() -> EventSubscription:
    global _subscription
    if _subscription is None:
        _subscription = event_transport().subscribe(settings.TECHBANK_KAFKA_GROUP, member_id=projection_member_id())
    return _subscription


def close_projection_subscription() -> None:
    global _subscription
    if _subscription is not None:
        _subscription.close()
        _subscription = None


def reset() -> None:
    """Forget built objects (tests that change settings call this)."""
    close_projection_subscription()
    built_objects = (event_store, snapshot_store, account_repository, event_transport, command_bus, relay_nudges)
    for built in (*built_objects, in_process_event_path):
        built.cache_clear()

"""The full stack's plumbing choices: how clients sign in to Kafka, and the relay's lock."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from eventstore.transports.base import EventTransport

KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def kafka_authentication(config: Any) -> dict[str, Any]:
    """kafka-python's options for how every client of the app (producer, consumer, admin) signs in."""
    protocol = config.TECHBANK_KAFKA_SECURITY_PROTOCOL
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise ImproperlyConfigured(
            f"TECHBANK_KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of: {', '.join(KAFKA_SECURITY_PROTOCOLS)}"
        )
    if protocol == "PLAINTEXT":
        return {}
    mechanism = config.TECHBANK_KAFKA_SASL_MECHANISM
    if mechanism not in KAFKA_SASL_MECHANISMS:
        raise ImproperlyConfigured(
            f"TECHBANK_KAFKA_SASL_MECHANISM={mechanism!r} is not one of: {', '.join(KAFKA_SASL_MECHANISMS)}"
        )
    if not (config.TECHBANK_KAFKA_USERNAME and config.TECHBANK_KAFKA_PASSWORD):
        raise ImproperlyConfigured(
            f"TECHBANK_KAFKA_SECURITY_PROTOCOL={protocol} needs TECHBANK_KAFKA_USERNAME and TECHBANK_KAFKA_PASSWORD"
        )
    # kafka-python takes the user in these two options for SCRAM as well as for PLAIN.
    return {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": config.TECHBANK_KAFKA_USERNAME,
        "sasl_plain_password": config.TECHBANK_KAFKA_PASSWORD,
    }


def relay_lock_for(transport: EventTransport, config: Any):
    """One relay at a time across all workers, so the outbox goes out in order.

    The relay renews it while it runs and confirms it before each batch
    (eventstore.relay); its timeout (TECHBANK_RELAY_LOCK_SECONDS) outlasts the
    longest send of `transport`, so a batch sent after a confirmation has gone
    out (or failed) before anyone else can take the lock, even if the lock's
    server is out of reach meanwhile. A relay that dies holding it holds the
    next one up for that long at most. Not thread-local: the renewing thread must be able to extend it.
    """
    import redis

    timeout = config.TECHBANK_RELAY_LOCK_SECONDS
    longest_send = transport.longest_send_seconds()
    if timeout <= longest_send:
        raise ImproperlyConfigured(
            f"TECHBANK_RELAY_LOCK_SECONDS={timeout:g} must be longer than the longest send to Kafka "
            f"({longest_send:g} s), or a relay could still be sending when the next one takes over"
        )
    client = redis.Redis.from_url(config.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=5)
    return client.lock(f"techbank:relay-outbox:{config.TECHBANK_KAFKA_TOPIC}", timeout=timeout, thread_local=False)

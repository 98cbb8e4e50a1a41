"""The JSON envelope every event travels in (documented in the README)."""

import json
import uuid
from datetime import datetime

from eventstore.store import StoredEvent

SCHEMA_VERSION = 1


class InvalidEnvelope(ValueError):
    pass


def encode(event: StoredEvent) -> tuple[bytes, bytes]:
    """(key, value): the key is the account id, so one account stays on one partition."""
    envelope = {
        "event_id": str(event.event_id),
        "type": event.event_type,
        "schema_version": SCHEMA_VERSION,
        "account_id": event.stream_id,
        "version": event.version,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data,
        "metadata": event.metadata,
    }
    return event.stream_id.encode(), json.dumps(envelope, separators=(",", ":")).encode()


def decode(value: bytes) -> StoredEvent:
    try:
        envelope = json.loads(value)
        if envelope["schema_version"] != SCHEMA_VERSION:
            raise InvalidEnvelope(f"unsupported schema_version {envelope['schema_version']!r}")
        occurred_at = datetime.fromisoformat(envelope["occurred_at"])
        if occurred_at.tzinfo is None:
            raise InvalidEnvelope("occurred_at has no time zone")
        version = envelope["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidEnvelope(f"version must be a positive integer, not {version!r}")
        if not isinstance(envelope["data"], dict) or not isinstance(envelope["metadata"], dict):
            raise InvalidEnvelope("data and metadata must be objects")
        return StoredEvent(
            event_id=uuid.UUID(envelope["event_id"]),
            stream_id=str(uuid.UUID(envelope["account_id"])),
            version=version,
            event_type=str(envelope["type"]),
            data=envelope["data"],
            occurred_at=occurred_at,
            metadata=envelope["metadata"],
        )
    except InvalidEnvelope:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidEnvelope(f"not a TechBank event envelope: {exc!r}") from None

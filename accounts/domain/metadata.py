"""What every event records about the request that caused it: the audit trail, typed."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True, slots=True)  # slots: one is built per event a replay reads
class EventMetadata:
    """Who asked, under which request (and idempotency key), and when the event happened.

    Stored beside the event's data as a JSON object of the first three
    (accounts.adapters.event_mapping); the time is the event's own column.
    """

    issued_by: str = ""
    correlation_id: str = ""
    idempotency_key: str = ""
    occurred_at: datetime

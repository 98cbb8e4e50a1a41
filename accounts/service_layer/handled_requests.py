"""Which keyed requests already changed an account: what makes a retry after a crash safe.

A request under an Idempotency-Key records the key on its events. If the
process dies after storing them but before the answer was recorded, the retry
runs the command again; the unit of work finds the key among the account's
events (or in its snapshot) and the handler answers without a second effect.
The aggregate knows nothing of this: it decides only about money.
"""

from collections.abc import Iterable
from datetime import datetime

from accounts.domain.metadata import EventMetadata


class HandledRequests:
    """(issued_by, idempotency_key) of every keyed request that changed one account, and when."""

    def __init__(self, handled: dict[tuple[str, str], datetime] | None = None):
        self._handled: dict[tuple[str, str], datetime] = dict(handled or {})

    def note(self, metadata: EventMetadata) -> None:
        """Remember the request behind an event (one without a key is no request to find again)."""
        if metadata.idempotency_key:
            self._handled[(metadata.issued_by, metadata.idempotency_key)] = metadata.occurred_at

    def note_all(self, events: Iterable[EventMetadata]) -> None:
        handled = self._handled  # one loop, no call per event: a full replay runs this over every event
        for metadata in events:
            if metadata.idempotency_key:
                handled[(metadata.issued_by, metadata.idempotency_key)] = metadata.occurred_at

    def has_handled(self, issued_by: str, idempotency_key: str, *, since: datetime | None = None) -> bool:
        """Whether this user's request under this key changed the account (at or after `since`, if given)."""
        if not idempotency_key:
            return False  # no key, no earlier request to find
        handled_at = self._handled.get((issued_by, idempotency_key))
        return handled_at is not None and (since is None or handled_at >= since)

    def copy(self) -> "HandledRequests":
        return HandledRequests(self._handled)

    def to_json(self, *, since: datetime | None = None) -> list[list[str]]:
        """[issued_by, key, ISO time] of each request, leaving out those before `since`.

        Only a caller that always asks `has_handled(since=...)` with a later
        `since` (an idempotency key expires) may leave some out: it gets the same
        answers, and a snapshot does not grow with the account's whole history of keys.
        """
        return [
            [issued_by, key, handled_at.isoformat()]
            for (issued_by, key), handled_at in self._handled.items()
            if since is None or handled_at >= since
        ]

    @classmethod
    def from_json(cls, entries: object) -> "HandledRequests":
        """What `to_json` wrote; ValueError (or TypeError) if it is anything else.

        A request without a time would be forgotten (has_handled is False), so
        a retry would move money again: it is refused, not skipped.
        """
        if not isinstance(entries, list):
            raise TypeError(f"{entries!r} is not a list of handled requests")
        handled: dict[tuple[str, str], datetime] = {}
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != 3:
                raise ValueError(f"{entry!r} is not [issued_by, key, time]")
            issued_by, key, handled_at = entry
            if not (isinstance(issued_by, str) and isinstance(key, str)):
                raise TypeError(f"{entry!r}: the user and the key must be strings")
            if not isinstance(handled_at, str):
                raise ValueError("a handled request has no time")
            moment = datetime.fromisoformat(handled_at)
            if moment.tzinfo is None:
                raise ValueError(f"{handled_at!r} has no time zone")
            handled[(issued_by, key)] = moment
        return cls(handled)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HandledRequests) and self._handled == other._handled

    __hash__ = None  # type: ignore[assignment]  # mutable: not a dict key

    def __repr__(self) -> str:
        return f"HandledRequests({self._handled!r})"

"""Snapshots: a stream's state at one version, stored beside its events.

A snapshot is a cache. The events stay the truth: a missing, stale or corrupt
snapshot only costs a longer replay, so the repository that uses one treats
every failure here as "no snapshot". Each backend keeps one snapshot per
stream, the newest it was given.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    stream_id: str
    version: int  # the version of the stream's last event that `state` includes
    schema: str  # which code wrote `state` (a fingerprint): other code must not trust it
    state: dict  # JSON-able


class SnapshotStore(abc.ABC):
    @abc.abstractmethod
    def get(self, stream_id: str) -> Snapshot | None:
        """The stream's snapshot, or None."""

    @abc.abstractmethod
    def save(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the stream's, unless the stored one is of a later version.

        One of the same version is replaced (it may be of another schema).
        """

    @abc.abstractmethod
    def delete(self, stream_id: str) -> None:
        """Forget the stream's snapshot (one that cannot be used); a missing one is no error."""

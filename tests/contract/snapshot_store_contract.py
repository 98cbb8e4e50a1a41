"""The snapshot-store contract: every backend subclasses this class once, unchanged.

A subclass provides one fixture, `snapshots`, giving an empty snapshot store,
and `release_thread_resources`, for backends whose connections are per thread.
"""

import threading
import uuid

from eventstore.snapshots import Snapshot


def stream() -> str:
    return str(uuid.uuid4())


def snapshot(stream_id: str, version: int, schema: str = "schema-1", **state) -> Snapshot:
    return Snapshot(stream_id, version, schema, state or {"balance": f"{version}.00"})


class SnapshotStoreContract:
    def release_thread_resources(self):
        """Called at the end of each worker thread (Django closes its connection)."""

    def test_a_stream_without_a_snapshot_has_none(self, snapshots):
        assert snapshots.get(stream()) is None

    def test_a_saved_snapshot_loads_back_unchanged(self, snapshots):
        account = stream()
        state = {
            "holder": "Zoë Ñandú 🐧",
            "balance": "9999999999999.99",
            "is_closed": False,
            "closed_at": None,
            "opened_at": "2026-11-26T09:30:15.123456+00:00",
            "handled_requests": [["teller", "key-1", "2026-11-26T09:30:15.123456+00:00"], ["bob", "𝄞", "x"]],
            "version": 2_000_000,
        }
        snapshots.save(Snapshot(account, 2_000_000, "a" * 64, state))
        assert snapshots.get(account) == Snapshot(account, 2_000_000, "a" * 64, state)

    def test_a_later_snapshot_replaces_an_earlier_one(self, snapshots):
        account = stream()
        snapshots.save(snapshot(account, 100))
        snapshots.save(snapshot(account, 200))
        assert snapshots.get(account) == snapshot(account, 200)

    def test_an_older_snapshot_never_overwrites_a_newer_one(self, snapshots):
        account = stream()
        snapshots.save(snapshot(account, 200))
        snapshots.save(snapshot(account, 100))
        assert snapshots.get(account) == snapshot(account, 200)

    def test_a_snapshot_of_the_same_version_by_other_code_replaces_the_stored_one(self, snapshots):
        account = stream()
        snapshots.save(snapshot(account, 100, schema="old code"))
        snapshots.save(snapshot(account, 100, schema="new code", balance="1.00", format=2))
        assert snapshots.get(account) == snapshot(account, 100, schema="new code", balance="1.00", format=2)

    def test_each_stream_keeps_its_own_snapshot(self, snapshots):
        a, b = stream(), stream()
        snapshots.save(snapshot(a, 300))
        snapshots.save(snapshot(b, 100))
        assert (snapshots.get(a).version, snapshots.get(b).version) == (300, 100)

    def test_a_deleted_snapshot_is_gone_and_any_version_may_follow_it(self, snapshots):
        account, other = stream(), stream()
        snapshots.save(snapshot(account, 200))
        snapshots.save(snapshot(other, 200))
        snapshots.delete(account)
        assert snapshots.get(account) is None
        snapshots.delete(account)  # again: harmless
        snapshots.save(snapshot(account, 100))
        assert snapshots.get(account) == snapshot(account, 100)
        assert snapshots.get(other) == snapshot(other, 200)

    def test_changing_a_saved_state_afterwards_does_not_change_the_stored_snapshot(self, snapshots):
        account = stream()
        state = {"balance": "1.00", "handled_requests": []}
        snapshots.save(Snapshot(account, 1, "s", state))
        state["balance"] = "2.00"
        state["handled_requests"].append(["teller", "k", "t"])
        assert snapshots.get(account).state == {"balance": "1.00", "handled_requests": []}

    def test_changing_a_loaded_state_does_not_change_the_stored_snapshot(self, snapshots):
        account = stream()
        snapshots.save(Snapshot(account, 1, "s", {"balance": "1.00", "handled_requests": []}))
        loaded = snapshots.get(account).state
        loaded["balance"] = "2.00"
        loaded["handled_requests"].append(["teller", "k", "t"])
        assert snapshots.get(account).state == {"balance": "1.00", "handled_requests": []}

    def test_racing_savers_leave_the_latest_snapshot(self, snapshots):
        account = stream()
        savers = 8
        barrier = threading.Barrier(savers)
        failures = []

        def save(version):
            try:
                barrier.wait()
                snapshots.save(snapshot(account, version))
            except Exception as error:  # noqa: BLE001 - the assertion below names it
                failures.append(error)
            finally:
                self.release_thread_resources()

        threads = [threading.Thread(target=save, args=(100 * n,)) for n in range(1, savers + 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        assert snapshots.get(account) == snapshot(account, 100 * savers)

"""The idempotency step on in-memory records: what runs, what is answered again, what is refused."""

import itertools
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from accounts.service_layer.idempotency import (
    Answer,
    IdempotencyKeyReuse,
    IdempotencyRecords,
    IdempotentRequestInProgress,
    IdempotentRequests,
    Outcome,
    Replayed,
)


class InMemoryIdempotencyRecords(IdempotencyRecords):
    def __init__(self):
        self.rows = {}  # (owner, key) -> (record, created_at)
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def _find(self, record_id):
        return next(((k, v) for k, v in self.rows.items() if v[0].record_id == record_id), (None, None))

    def claim(self, owner, key, fingerprint, *, now, lease_until):
        from accounts.service_layer.idempotency import KeyRecord

        with self.lock:
            if (owner, key) in self.rows:
                return None
            record = KeyRecord(next(self.ids), fingerprint, lease_until)
            self.rows[(owner, key)] = (record, now)
            return replace(record)

    def get(self, owner, key):
        row = self.rows.get((owner, key))
        return None if row is None else replace(row[0])

    def refresh(self, record):
        _, row = self._find(record.record_id)
        return None if row is None else replace(row[0])

    def take_over_if_lapsed(self, record, *, now, lease_until):
        where, row = self._find(record.record_id)
        if row is None or row[0].done or row[0].locked_until >= now:
            return False
        self.rows[where] = (replace(row[0], locked_until=lease_until), row[1])
        return True

    def renew(self, record, *, lease_until):
        where, row = self._find(record.record_id)
        if row is not None and not row[0].done:
            self.rows[where] = (replace(row[0], locked_until=lease_until), row[1])

    def finish(self, record, answer):
        where, row = self._find(record.record_id)
        self.rows[where] = (replace(row[0], answer=answer), row[1])

    def release(self, record):
        where, _ = self._find(record.record_id)
        self.rows.pop(where, None)

    def forget_expired(self, owner, key, *, created_before):
        row = self.rows.get((owner, key))
        if row is not None and row[1] < created_before:
            del self.rows[(owner, key)]

    def purge(self, *, created_before):
        old = [where for where, (_, created_at) in self.rows.items() if created_at < created_before]
        for where in old:
            del self.rows[where]
        return len(old)


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


OK = Answer(200, {"balance": "10.00"}, {})


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def records():
    return InMemoryIdempotencyRecords()


@pytest.fixture
def step(records, clock):
    return IdempotentRequests(records, ttl=timedelta(hours=24), wait_seconds=0.2, clock=clock)


def counting(answer=OK):
    runs = []

    def request():
        runs.append(1)
        return Outcome(f"result {len(runs)}", answer)

    return request, runs


def test_the_first_request_runs_and_a_retry_gets_its_answer_again_without_running(step):
    request, runs = counting()
    assert step.run("teller", "k", "fp", request) == "result 1"
    assert step.run("teller", "k", "fp", request) == Replayed(OK) and len(runs) == 1
    assert len(runs) == 1


def test_the_same_key_with_another_request_is_refused(step):
    step.run("teller", "k", "fp", counting()[0])
    with pytest.raises(IdempotencyKeyReuse):
        step.run("teller", "k", "another", counting()[0])


def test_keys_belong_to_their_owner(step):
    request, runs = counting()
    step.run("alice", "k", "fp", request)
    step.run("bob", "k", "fp", request)
    assert len(runs) == 2


def test_an_answer_that_says_retry_is_not_kept_so_the_retry_runs(step):
    request, runs = counting(answer=None)
    step.run("teller", "k", "fp", request)
    step.run("teller", "k", "fp", request)
    assert len(runs) == 2


def test_a_request_that_raised_frees_its_key_and_the_error_reaches_the_caller(step, records):
    def broken():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        step.run("teller", "k", "fp", broken)
    assert records.rows == {}


def test_a_key_older_than_its_time_to_live_names_a_new_request(step, clock):
    request, runs = counting()
    step.run("teller", "k", "fp", request)
    clock.now += timedelta(hours=24, microseconds=1)
    assert step.run("teller", "k", "other request", request) == "result 2" and len(runs) == 2


def test_a_retry_meeting_a_live_claim_waits_then_is_told_the_first_is_in_progress(step, records, clock):
    records.claim("teller", "k", "fp", now=clock.now, lease_until=clock.now + timedelta(seconds=30))
    request, runs = counting()
    with pytest.raises(IdempotentRequestInProgress):
        step.run("teller", "k", "fp", request)
    assert runs == []


def test_a_retry_takes_over_a_claim_whose_lease_lapsed_and_runs(step, records, clock):
    records.claim("teller", "k", "fp", now=clock.now, lease_until=clock.now - timedelta(seconds=1))
    request, runs = counting()
    assert step.run("teller", "k", "fp", request) == "result 1"
    assert step.run("teller", "k", "fp", request) == Replayed(OK) and len(runs) == 1


def test_purging_forgets_only_keys_older_than_their_time_to_live(step, records, clock):
    step.run("teller", "old", "fp", counting()[0])
    clock.now += timedelta(hours=23)
    step.run("teller", "young", "fp", counting()[0])
    clock.now += timedelta(hours=2)
    assert step.purge_expired() == 1 and [key for _, key in records.rows] == ["young"]


def test_a_long_request_keeps_renewing_its_lease(records, clock):
    step = IdempotentRequests(records, ttl=timedelta(hours=1), lease=timedelta(seconds=0.06), clock=clock)
    renewals = []
    real_renew = records.renew

    def renew(record, *, lease_until):
        renewals.append(lease_until)
        real_renew(record, lease_until=lease_until)

    records.renew = renew
    done = threading.Event()

    def slow():
        done.wait(0.2)
        return Outcome("slow", OK)

    assert step.run("teller", "k", "fp", slow) == "slow"
    assert len(renewals) >= 2
    # Each renewal holds the key one lease past the clock's now, not into the past (a retry would take it over).
    assert set(renewals) == {clock.now + timedelta(seconds=0.06)}


def test_a_retry_waits_for_a_first_request_that_finishes_meanwhile_and_gets_its_answer(records, clock):
    step = IdempotentRequests(records, ttl=timedelta(hours=1), wait_seconds=5, clock=clock)
    first = records.claim("teller", "k", "fp", now=clock.now, lease_until=clock.now + timedelta(seconds=30))
    finisher = threading.Timer(0.2, lambda: records.finish(first, OK))
    finisher.start()
    request, runs = counting()
    try:
        assert step.run("teller", "k", "fp", request) == Replayed(OK)
    finally:
        finisher.join()
    assert runs == []


def test_a_claim_whose_lease_ends_exactly_now_is_still_live(step, records, clock):
    records.claim("teller", "k", "fp", now=clock.now, lease_until=clock.now)
    request, runs = counting()
    with pytest.raises(IdempotentRequestInProgress):
        step.run("teller", "k", "fp", request)
    assert runs == []


def test_a_claim_holds_the_key_one_lease_ahead_of_the_clock(step, records, clock):
    held_until = []

    def request():
        [(record, _)] = records.rows.values()
        held_until.append(record.locked_until)
        return Outcome("done", OK)

    assert step.run("teller", "k", "fp", request) == "done"
    assert held_until == [clock.now + step.lease]


class FreedBetweenTheClaimAndTheLook(InMemoryIdempotencyRecords):
    """The first claim meets another request's record, which is gone (a transient answer freed it) by the look."""

    def __init__(self):
        super().__init__()
        self.freed_once = False

    def claim(self, owner, key, fingerprint, *, now, lease_until):
        if not self.freed_once:
            return None
        return super().claim(owner, key, fingerprint, now=now, lease_until=lease_until)

    def get(self, owner, key):
        self.freed_once = True
        return None


def test_a_key_freed_between_the_claim_and_the_look_is_claimed_again_and_the_request_runs(clock):
    step = IdempotentRequests(FreedBetweenTheClaimAndTheLook(), ttl=timedelta(hours=1), clock=clock)
    request, runs = counting()
    assert step.run("teller", "k", "fp", request) == "result 1" and runs == [1]


def test_a_retry_that_takes_over_a_lapsed_claim_holds_the_key_one_lease_ahead(step, records, clock):
    records.claim("teller", "k", "fp", now=clock.now, lease_until=clock.now - timedelta(seconds=1))
    held_until = []

    def request():
        [(record, _)] = records.rows.values()
        held_until.append(record.locked_until)
        return Outcome("done", OK)

    assert step.run("teller", "k", "fp", request) == "done"
    assert held_until == [clock.now + step.lease]


def test_a_retry_whose_first_request_freed_the_key_while_it_waited_claims_it_and_runs(records, clock):
    step = IdempotentRequests(records, ttl=timedelta(hours=1), wait_seconds=5, clock=clock)
    first = records.claim("teller", "k", "fp", now=clock.now, lease_until=clock.now + timedelta(seconds=30))
    freer = threading.Timer(0.2, lambda: records.release(first))
    freer.start()
    request, runs = counting()
    try:
        assert step.run("teller", "k", "fp", request) == "result 1"
    finally:
        freer.join()
    assert runs == [1]

"""The keyed requests an account has handled, as the unit of work keeps them (no longer the aggregate's)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from accounts.domain.metadata import EventMetadata
from accounts.service_layer.handled_requests import HandledRequests

AT = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)


def handled(*requests: tuple[str, str, datetime]) -> HandledRequests:
    noted = HandledRequests()
    noted.note_all(EventMetadata(issued_by=user, idempotency_key=key, occurred_at=at) for user, key, at in requests)
    return noted


def test_keys_belong_to_their_user():
    requests = handled(("teller", "k-1", AT))
    assert requests.has_handled("teller", "k-1")
    assert not requests.has_handled("bob", "k-1") and not requests.has_handled("teller", "k-2")


def test_an_event_without_a_key_is_no_request_to_find_again():
    requests = handled(("teller", "", AT))
    assert not requests.has_handled("teller", "") and requests.to_json() == []


def test_a_key_recorded_without_a_user_belongs_to_the_empty_user_name_as_command_metadata_leaves_it():
    requests = handled(("", "k", AT))
    assert requests.has_handled("", "k") and not requests.has_handled("teller", "k")


def test_a_request_handled_exactly_at_the_cut_off_is_still_handled_and_one_microsecond_before_is_not():
    requests = handled(("teller", "k", AT))
    assert requests.has_handled("teller", "k", since=AT)
    assert not requests.has_handled("teller", "k", since=AT + timedelta(microseconds=1))


def test_the_latest_use_of_a_key_counts():
    requests = handled(("teller", "k", AT), ("teller", "k", AT + timedelta(days=2)))
    assert requests.has_handled("teller", "k", since=AT + timedelta(days=1))


def test_through_json_every_answer_is_the_same():
    requests = handled(("teller", "k-1", AT), ("bob", "k-1", AT + timedelta(seconds=1)), ("teller", "𝄞", AT))
    again = HandledRequests.from_json(json.loads(json.dumps(requests.to_json())))
    assert again == requests
    for user, key in (("teller", "k-1"), ("bob", "k-1"), ("alice", "k-1"), ("teller", "𝄞"), ("teller", "")):
        for since in (None, AT - timedelta(microseconds=1), AT, AT + timedelta(microseconds=1)):
            assert again.has_handled(user, key, since=since) == requests.has_handled(user, key, since=since)


def test_json_leaves_out_requests_before_since_but_keeps_one_exactly_at_it():
    requests = handled(("teller", "old", AT - timedelta(days=2)), ("teller", "live", AT))
    assert requests.to_json(since=AT) == [["teller", "live", AT.isoformat()]]
    assert len(requests.to_json()) == 2


def test_a_copy_goes_its_own_way():
    requests = handled(("teller", "k-1", AT))
    twin = requests.copy()
    twin.note(EventMetadata(issued_by="teller", idempotency_key="k-2", occurred_at=AT))
    assert not requests.has_handled("teller", "k-2") and twin.has_handled("teller", "k-1")


@pytest.mark.parametrize(
    "entries, problem",
    [
        ([["teller", "k-1"]], r"is not \[issued_by, key, time\]"),
        ([["teller", 7, "2026-11-26T09:30:00+00:00"]], "the user and the key must be strings"),
        # A request with no time would be forgotten (has_handled is False), so a retry would move money again.
        ([["teller", "k-1", None]], r"^a handled request has no time$"),
        ([["teller", "k-1", "2026-11-26T09:30:00"]], "has no time zone"),
        (None, "is not a list of handled requests"),
    ],
    ids=["without a time", "a number for a key", "a null time", "a time without a zone", "no list"],
)
def test_what_to_json_could_not_have_written_is_refused_with_the_reason(entries, problem):
    with pytest.raises((TypeError, ValueError), match=problem):
        HandledRequests.from_json(entries)


def test_a_request_noted_one_at_a_time_keeps_its_time():
    requests = HandledRequests()
    requests.note(EventMetadata(issued_by="teller", idempotency_key="k-1", occurred_at=AT))
    assert requests.has_handled("teller", "k-1", since=AT)
    assert not requests.has_handled("teller", "k-1", since=AT + timedelta(microseconds=1))


def test_handled_requests_are_equal_only_to_the_same_requests():
    assert handled(("teller", "k-1", AT)) == handled(("teller", "k-1", AT))
    assert handled(("teller", "k-1", AT)) != handled(("teller", "k-2", AT))
    assert handled(("teller", "k-1", AT)) != [["teller", "k-1", AT.isoformat()]]

"""The embedded bus: a command's effect shows in the very next query; a failed projection heals."""

from decimal import Decimal

import pytest
from django.db import OperationalError

from entrypoints import wiring
from projections import projection
from projections.models import AccountSummary

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_read_model_shows_a_command_in_the_very_next_query(api):
    account = api.post(
        "/api/accounts/", {"holder": "Now", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()
    api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "2.00"}, format="json")
    assert api.get(f"/api/accounts/{account['id']}/").json()["balance"] == "3.00"
    assert wiring.services().event_store.unpublished() == []


def test_a_failed_projection_keeps_the_events_and_the_next_command_catches_up(api, monkeypatch):
    account = api.post(
        "/api/accounts/", {"holder": "Later", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()

    def broken(summary, event):
        raise OperationalError("read database unavailable")  # not the event's fault: it is not dead-lettered

    monkeypatch.setattr(projection, "apply_event", broken)
    response = api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "2.00"}, format="json")
    assert response.status_code == 200 and response.json()["balance"] == "3.00"  # the command happened
    assert AccountSummary.objects.get(id=account["id"]).balance == Decimal("1.00")  # the read side lags
    assert [e.version for e in wiring.services().event_store.unpublished()] == [2]

    monkeypatch.undo()
    api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "4.00"}, format="json")
    assert AccountSummary.objects.get(id=account["id"]).balance == Decimal("7.00")
    assert wiring.services().event_store.unpublished() == []


def test_the_kafka_commands_say_clearly_that_the_embedded_stack_has_no_topic():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="TECHBANK_EVENT_BUS='inline'"):
        call_command("relay_outbox")

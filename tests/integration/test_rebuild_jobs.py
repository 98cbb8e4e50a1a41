"""Rebuilds as jobs: started through the resource API, watched while they run, one at a time."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from entrypoints.drf.permissions import REBUILD_READ_MODEL, VIEW_ACCOUNTS
from entrypoints.wiring import services
from projections import rebuild
from projections.adapters import read_model_writer
from projections.models import AccountSummary, RebuildJob
from projections.rebuild import ABANDONED_AFTER, RebuildAbandoned, rebuild_job_run, rebuild_job_start

pytestmark = pytest.mark.django_db(transaction=True)


def open_account(api, balance="10.00") -> str:
    return api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": balance}, format="json"
    ).json()["id"]


def wait_for_the_rebuild_thread(job_id: str) -> None:
    """The job runs in a thread of this process (the embedded stack); the timeout only bounds a hang."""
    for thread in threading.enumerate():
        if thread.name == f"rebuild-{job_id}":
            thread.join(timeout=120)
            assert not thread.is_alive()


def test_a_rebuild_started_through_the_api_answers_202_and_can_be_watched_to_its_end(api):
    account_id = open_account(api)
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "5.00"}, format="json")
    AccountSummary.objects.filter(id=account_id).update(balance="0.01")  # damaged

    started = api.post("/api/rebuilds/")

    assert started.status_code == 202, started.content
    job = started.json()
    assert started["Location"] == f"http://testserver/api/rebuilds/{job['id']}"
    assert set(job) == {
        "id",
        "status",
        "events_done",
        "events_total",
        "accounts",
        "requested_by",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "error",
    }
    assert (job["status"], job["requested_by"], job["finished_at"], job["error"]) == ("RUNNING", "teller", None, "")
    wait_for_the_rebuild_thread(job["id"])
    watched = api.get(started["Location"])
    assert watched.status_code == 200
    events = services().event_store.count_events()
    assert {k: watched.json()[k] for k in ("status", "events_done", "events_total", "accounts", "error")} == {
        "status": "SUCCEEDED",
        "events_done": events,
        "events_total": events,
        "accounts": 1,
        "error": "",
    }
    assert watched.json()["finished_at"] is not None
    assert str(AccountSummary.objects.get(id=account_id).balance) == "15.00"


def test_a_second_rebuild_while_one_runs_is_refused_everywhere_and_nothing_is_started(api):
    running = rebuild_job_start(requested_by="someone else")

    resource = api.post("/api/rebuilds/")
    techbank = api.post("/api/v1/restoreReadDb")
    with pytest.raises(CommandError, match="already running"):
        call_command("rebuild_read_model", "--no-progress", stdout=StringIO())

    assert (resource.status_code, resource.json()["code"]) == (409, "rebuild_in_progress")
    assert f"http://testserver/api/rebuilds/{running.id}" in resource.json()["message"]
    assert techbank.status_code == 409 and list(techbank.json()) == ["message"]
    assert "already running" in techbank.json()["message"]
    assert list(RebuildJob.objects.values_list("id", "status")) == [(running.id, "RUNNING")]


def test_a_rebuild_whose_process_stopped_is_taken_over_and_cannot_come_back(api):
    open_account(api)
    stopped = rebuild_job_start()
    RebuildJob.objects.filter(pk=stopped.pk).update(
        heartbeat_at=timezone.now() - ABANDONED_AFTER - timedelta(seconds=1)
    )

    started = api.post("/api/rebuilds/")

    assert started.status_code == 202, started.content
    wait_for_the_rebuild_thread(started.json()["id"])
    stopped.refresh_from_db()
    assert stopped.status == "FAILED" and stopped.error.startswith("abandoned: no progress for 120 s")
    assert api.get(started["Location"]).json()["status"] == "SUCCEEDED"

    # Its process wakes up while another rebuild builds its copies: it no longer owns the job, and touches nothing.
    rebuild_job_start()
    copies = read_model_writer.vendor_tables(connection)
    copies.create_copies()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {rebuild.COPY_TABLES.summary} SELECT * FROM {read_model_writer.LIVE_TABLES.summary}"
        )
    try:
        with pytest.raises(RebuildAbandoned):
            rebuild_job_run(job_id=stopped.pk, event_store=services().event_store)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {rebuild.COPY_TABLES.summary}")
            assert cursor.fetchone() == (1,)
    finally:
        copies.drop(rebuild.COPY_TABLES)
    assert RebuildJob.objects.get(pk=stopped.pk).status == "FAILED"


def test_watching_a_rebuild_that_does_not_exist_is_a_404(api):
    for rebuild_id in ("6f1c2b9e-0000-4000-8000-000000000000", "not-a-uuid"):
        response = api.get(f"/api/rebuilds/{rebuild_id}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_rebuilds_need_the_rebuild_permission(api_as, anonymous):
    job = rebuild_job_start()
    auditor = api_as(VIEW_ACCOUNTS)
    for response in (auditor.post("/api/rebuilds/"), auditor.get(f"/api/rebuilds/{job.id}")):
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
        assert REBUILD_READ_MODEL in response.json()["message"]
    assert anonymous.post("/api/rebuilds/").status_code == 401
    assert RebuildJob.objects.count() == 1


@pytest.fixture
def unreachable_worker_broker(settings):
    """The full stack, with Celery's broker on a loopback port nothing listens on."""
    from techbank_site.celery import app
    from tests.servers.processes import free_port

    settings.TECHBANK_EVENT_BUS = "kafka"
    reachable_url = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app._pool = None  # producers are pooled per broker: none of the reachable one's
    yield
    app.conf.broker_url = reachable_url
    app._pool = None


def test_a_rebuild_the_worker_cannot_be_asked_to_run_is_a_503_and_leaves_no_running_job(api, unreachable_worker_broker):
    refused = api.post("/api/rebuilds/")

    assert refused.status_code == 503, refused.content
    assert refused.json()["code"] == "service_unavailable"
    assert "nothing was started" in refused.json()["message"]
    job = RebuildJob.objects.get()
    assert (job.status, job.running) == ("FAILED", None)
    assert job.error.startswith("not started: the worker's broker could not be reached")
    # Nothing holds the one place for a running rebuild: the next start is not refused as in progress.
    assert rebuild_job_start(requested_by="next").status == "RUNNING"

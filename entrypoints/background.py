"""Work a request starts and does not wait for: a read-model rebuild (projections.rebuild)."""

import logging
import threading
from uuid import UUID

from django.db import connections

from entrypoints.wiring import services
from projections.rebuild import RebuildNotStarted, rebuild_job_not_started, rebuild_job_run

logger = logging.getLogger(__name__)


def run_rebuild_in_background(job_id: UUID) -> None:
    """Run a started read-model rebuild away from the request that started it.

    Full stack (Kafka bus): a Celery task. If the broker cannot take it, the job
    is marked failed (so it blocks no later rebuild) and RebuildNotStarted is raised.
    Embedded: a thread of this process (a rebuild writes in short
    transactions, so requests go on meanwhile; if the process stops, the job
    stops beating and the next rebuild takes over).
    """
    if services().full_stack:
        from entrypoints.tasks import rebuild_read_model_task

        # The job row is committed (rebuild_job_start commits it): the worker may pick it up at once.
        try:
            rebuild_read_model_task.delay(str(job_id))
        except Exception as exc:  # kombu's OperationalError, or whatever the broker's client raised
            rebuild_job_not_started(job_id=job_id, reason=f"the worker's broker could not be reached ({exc})")
            raise RebuildNotStarted(f"the worker's broker could not be reached: {exc}") from exc
        return
    threading.Thread(target=_run_rebuild, args=(job_id,), name=f"rebuild-{job_id}", daemon=True).start()


def _run_rebuild(job_id: UUID) -> None:
    try:
        rebuild_job_run(job_id=job_id, event_store=services().event_store)
    except Exception:
        logger.exception("rebuild %s failed", job_id)  # and its job row says so
    finally:
        connections.close_all()  # this thread's own

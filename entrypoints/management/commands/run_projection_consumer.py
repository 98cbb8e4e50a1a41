import logging
import os
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections

from entrypoints.tasks import projection_member_id
from entrypoints.wiring import services
from eventstore.transports.base import TransportUnavailable
from projections.consumer import consume_batch
from projections.selectors import dead_letters_pending_count

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run the projection consumer: reads the Kafka topic as a member of the consumer group, "
        "applies events to the read model, and commits offsets only after the read model's "
        "transaction has committed. It polls continuously, so an event shows in the read model "
        "as soon as it is on the topic. `celery -A techbank_site worker` runs it beside itself; "
        "more of them (other hosts) share the topic's partitions. Messages it cannot apply go to "
        "the dead-letter table (admin: Dead letters) and it moves on; a batch the read database "
        "refused comes again. SIGTERM or Ctrl-C to stop."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--group", default=settings.TECHBANK_KAFKA_GROUP, help="Consumer group (default: %(default)s)."
        )
        parser.add_argument("--member-id", default=None, help="Static member id (default: host and process).")
        parser.add_argument(
            "--until-idle",
            type=float,
            metavar="SECONDS",
            help="Stop once no message has arrived for this many seconds (for scripts and tests).",
        )
        parser.add_argument(
            "--retry",
            type=float,
            default=2.0,
            metavar="SECONDS",
            help="After a failed batch (Kafka or the read database down), try again after this long.",
        )
        parser.add_argument(
            "--parent-pid",
            type=int,
            metavar="PID",
            help="Stop once process PID (the worker that started this) is gone.",
        )

    def handle(self, *args, group, member_id, until_idle, retry, parent_pid, **options):
        stop = threading.Event()
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the batch, then leave
        transport = services().transport
        member_id = member_id or projection_member_id()
        store = services().event_store
        self.stdout.write(f"Consuming {settings.TECHBANK_KAFKA_TOPIC} as group {group}...")
        subscription = None
        applied = undecodable = dead_lettered = 0
        last_message = time.monotonic()

        def stopping() -> bool:
            return (
                stop.is_set()
                or (parent_pid is not None and os.getppid() != parent_pid)
                or (until_idle is not None and time.monotonic() - last_message >= until_idle)
            )

        try:
            while not stopping():
                try:
                    if subscription is None:
                        subscription = transport.subscribe(group, member_id=member_id)
                    outcome = consume_batch(subscription=subscription, event_store=store, timeout_ms=500)
                except TransportUnavailable as exc:
                    # Uncommitted messages come back to whichever member has the partition next.
                    logger.warning("Kafka unavailable, the read model waits: %s", exc)
                    subscription = self._close(subscription)
                    stop.wait(retry)
                    continue
                except Exception as exc:  # the read database down, say: the batch was not committed
                    logger.error(
                        "the projection consumer raised unexpected: %r; the batch comes again in %.0f s",
                        exc,
                        retry,
                        exc_info=options["verbosity"] > 1,
                    )
                    connections.close_all()  # a broken connection is not reused
                    stop.wait(retry)
                    continue
                if outcome.received:
                    last_message = time.monotonic()
                    applied += outcome.applied
                    undecodable += outcome.undecodable
                    dead_lettered += outcome.dead_lettered
                    if outcome.dead_lettered or options["verbosity"] > 1:  # routine batches only with -v 2
                        self.stdout.write(
                            f"received {outcome.received}, applied {outcome.applied}, dead-lettered "
                            f"{outcome.dead_lettered} (total applied {applied}, dead-lettered {dead_lettered})"
                        )
        except KeyboardInterrupt:
            pass
        finally:
            self._close(subscription)
            signal.signal(signal.SIGTERM, previous_handler)
        self.stdout.write(
            self.style.SUCCESS(
                f"Stopped: applied {applied} events, dead-lettered {dead_lettered} "
                f"({undecodable} undecodable); pending dead letters: {dead_letters_pending_count()}."
            )
        )

    @staticmethod
    def _close(subscription):
        if subscription is not None:
            try:
                subscription.close()
            except Exception:  # leaving is best effort: the group times the member out
                logger.warning("closing the Kafka subscription failed", exc_info=True)
        return None

import logging
import os
import signal
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from entrypoints.wiring import services
from eventstore.relay import RelayLockLost, RelayLockNotTaken, follow_outbox, holding, relay_outbox
from eventstore.transports.base import TransportUnavailable

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Publish every stored event that has not been published yet to the Kafka topic, in order, "
        "and mark it published. Once (for debugging and catch-up: it takes the relay lock, and fails "
        "at once, publishing nothing, while another relay holds it), or with --follow as the "
        "long-running relay: it holds the relay lock (a standby waits for it), is woken by each "
        "command, and also looks at the outbox every --idle seconds. `celery -A techbank_site worker` "
        "runs `relay_outbox --follow` beside itself. SIGTERM or Ctrl-C to stop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="Keep relaying as events are stored.")
        parser.add_argument(
            "--idle",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help="With --follow: look at the outbox at least this often (default: %(default)s).",
        )
        parser.add_argument(
            "--parent-pid",
            type=int,
            metavar="PID",
            help="With --follow: stop once process PID (the worker that started this) is gone.",
        )

    def handle(self, *args, follow, idle, parent_pid, **options):
        store = services().event_store
        try:
            transport = services().transport
            lock = services().relay_lock(transport)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if follow:
            self._follow(store, transport, lock, idle, parent_pid)
            return
        try:
            with holding(lock):
                sent = relay_outbox(
                    event_store=store, transport=transport, lock=lock, batch_size=settings.TECHBANK_RELAY_BATCH
                )
        except RelayLockNotTaken as exc:
            raise CommandError(f"{exc} (a running `relay_outbox --follow`, say); nothing published") from None
        except RelayLockLost as exc:
            raise CommandError(f"{exc}; stopped, the rest of the outbox is left to the relay that holds it") from None
        except TransportUnavailable as exc:
            raise CommandError(f"Kafka did not acknowledge; the events stay in the outbox: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Published {sent} event(s)."))

    def _follow(self, store, transport, lock, idle, parent_pid):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the batch, release the lock, leave

        def stopping() -> bool:
            return stop.is_set() or (parent_pid is not None and os.getppid() != parent_pid)

        wake_ups = services().relay_nudges.listen()
        try:
            sent = follow_outbox(
                event_store=store,
                transport=transport,
                lock=lock,
                wake_ups=wake_ups,
                stopping=stopping,
                idle_seconds=idle,
                batch_size=settings.TECHBANK_RELAY_BATCH,
            )
        except KeyboardInterrupt:
            sent = None
        finally:
            wake_ups.close()
            transport.close()
        published = f" ({sent} event(s) published)" if sent is not None else ""
        self.stdout.write(self.style.SUCCESS(f"Stopped following the outbox{published}."))

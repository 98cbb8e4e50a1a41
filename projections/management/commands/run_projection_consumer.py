import time

from django.conf import settings
from django.core.management.base import BaseCommand

from projections.consumer import consume_batch
from projections.selectors import dead_letters_pending_count
from techbank_site import bootstrap


class Command(BaseCommand):
    help = (
        "Run the projection consumer in the foreground (for debugging; in production it "
        "runs under `celery -A techbank_site worker -B`). Reads the Kafka topic as a member "
        "of the consumer group, applies events to the read model, and commits offsets only "
        "after the read model's transaction has committed. Messages it cannot apply go to the "
        "dead-letter table (admin: Dead letters) and it moves on. Ctrl-C to stop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--group", default=settings.TECHBANK_KAFKA_GROUP, help="Consumer group (default: %(default)s).")
        parser.add_argument("--member-id", default=None, help="Static member id (default: host and process).")
        parser.add_argument(
            "--until-idle",
            type=float,
            metavar="SECONDS",
            help="Stop once no message has arrived for this many seconds (for scripts and tests).",
        )

    def handle(self, *args, group, member_id, until_idle, **options):
        subscription = bootstrap.event_transport().subscribe(group, member_id=member_id or bootstrap.projection_member_id())
        store = bootstrap.event_store()
        self.stdout.write(f"Consuming {settings.TECHBANK_KAFKA_TOPIC} as group {group}...")
        applied = undecodable = dead_lettered = 0
        last_message = time.monotonic()
        try:
            while until_idle is None or time.monotonic() - last_message < until_idle:
                outcome = consume_batch(subscription=subscription, event_store=store, timeout_ms=500)
                if outcome.received:
                    last_message = time.monotonic()
                    applied += outcome.applied
                    undecodable += outcome.undecodable
                    dead_lettered += outcome.dead_lettered
                    self.stdout.write(
                        f"received {outcome.received}, applied {outcome.applied}, dead-lettered "
                        f"{outcome.dead_lettered} (total applied {applied}, dead-lettered {dead_lettered})"
                    )
        except KeyboardInterrupt:
            pass
        finally:
            subscription.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Stopped: applied {applied} events, dead-lettered {dead_lettered} "
                f"({undecodable} undecodable); pending dead letters: {dead_letters_pending_count()}."
            )
        )

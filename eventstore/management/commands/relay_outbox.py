from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from eventstore.relay import relay_outbox
from eventstore.transports.base import TransportUnavailable
from techbank_site import bootstrap


class Command(BaseCommand):
    help = (
        "Publish every stored event that has not been published yet to the Kafka topic, "
        "in order, and mark it published (for debugging and catch-up; under Celery the "
        "relay runs every second by itself)."
    )

    def handle(self, *args, **options):
        store = bootstrap.event_store()
        try:
            transport = bootstrap.event_transport()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        try:
            sent = relay_outbox(event_store=store, transport=transport)
        except TransportUnavailable as exc:
            raise CommandError(f"Kafka did not acknowledge; the events stay in the outbox: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Published {sent} event(s)."))

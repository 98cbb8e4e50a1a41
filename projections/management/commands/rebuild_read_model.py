from django.core.management.base import BaseCommand
from tqdm import tqdm

from projections.services import rebuild_read_model
from techbank_site import bootstrap


class Command(BaseCommand):
    help = (
        "Drop the read models (account summaries and ledgers) and rebuild them by "
        "replaying every event in the event store, in order. Safe to run at any time: "
        "the read side is derived data. Reports how many events and accounts it replayed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar (for logs).")

    def handle(self, *args, no_progress=False, **options):
        store = bootstrap.event_store()
        total = store.count_events()
        with tqdm(total=total, unit="event", desc="Replaying", disable=no_progress, file=self.stderr._out) as bar:
            events, accounts = rebuild_read_model(event_store=store, on_progress=bar.update)
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the read model: replayed {events} events into {accounts} accounts."))

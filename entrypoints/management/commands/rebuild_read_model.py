from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from entrypoints.wiring import services
from projections.rebuild import RebuildAlreadyRunning, rebuild_read_model


class Command(BaseCommand):
    help = (
        "Rebuild the read models (account summaries and ledgers) by replaying every event in the "
        "event store, beside the live ones, which keep serving and being projected; then swap them "
        "in. Safe to run at any time, on a live bank too: the read side is derived data. One rebuild "
        "runs at a time. Reports how many events and accounts it replayed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar (for logs).")

    def handle(self, *args, no_progress=False, **options):
        store = services().event_store
        total = store.count_events()
        with tqdm(total=total, unit="event", desc="Replaying", disable=no_progress, file=self.stderr._out) as bar:
            try:
                events, accounts = rebuild_read_model(
                    event_store=store, on_progress=bar.update, requested_by="manage.py rebuild_read_model"
                )
            except RebuildAlreadyRunning as running:
                raise CommandError(str(running)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Rebuilt the read model: replayed {events} events into {accounts} accounts.")
        )

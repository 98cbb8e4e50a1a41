from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from entrypoints.wiring import services
from projections.verification import read_model_differences


class Command(BaseCommand):
    help = (
        "Replay the event store in memory and compare it with the read model: each account's "
        "summary, and every row of its ledger (a digest of each account's ledger on both sides). "
        "Lists every account that differs (or is missing on either side, or waits behind a pending "
        "dead letter), with why, and exits with status 1 if there is any; exits 0 when the read "
        "model matches the events."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar (for logs).")

    def handle(self, *args, no_progress=False, **options):
        store = services().event_store
        total = store.count_events()
        with tqdm(total=total, unit="event", desc="Verifying", disable=no_progress, file=self.stderr._out) as bar:
            differing = list(read_model_differences(event_store=store, on_progress=bar.update))
        for difference in differing:
            self.stdout.write(f"differs: {difference.account_id}: {'; '.join(difference.reasons)}")
        if differing:
            raise CommandError(
                f"{len(differing)} account(s) differ from the event store; "
                "`manage.py rebuild_read_model` rebuilds the read model."
            )
        self.stdout.write(self.style.SUCCESS("The read model matches the event store."))

from django.core.management.base import BaseCommand, CommandError

from projections.services import read_model_differences
from techbank_site import bootstrap


class Command(BaseCommand):
    help = (
        "Replay the event store in memory and compare it with the read model. Lists every "
        "account whose summary differs (or is missing on either side) and exits with "
        "status 1 if there is any; exits 0 when the read model matches the events."
    )

    def handle(self, *args, **options):
        differing = list(read_model_differences(event_store=bootstrap.event_store()))
        for account_id in differing:
            self.stdout.write(f"differs: {account_id}")
        if differing:
            raise CommandError(
                f"{len(differing)} account(s) differ from the event store; "
                "`manage.py rebuild_read_model` rebuilds the read model."
            )
        self.stdout.write(self.style.SUCCESS("The read model matches the event store."))

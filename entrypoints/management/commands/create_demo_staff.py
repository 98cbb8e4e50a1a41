import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from entrypoints.drf.authentication import token_has_expired


class Command(BaseCommand):
    help = (
        "Create (or reset) the demo staff user for the embedded stack and print its "
        "username, a fresh password and its API token. For local use only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo-staff", help="Name of the demo user (default: %(default)s).")
        parser.add_argument("--port", type=int, default=8000, help="Port the server listens on, for the printed links.")

    def handle(self, *args, username, port, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        if token_has_expired(token):  # tokens last TECHBANK_TOKEN_TTL_HOURS: print one that works
            token.delete()
            token = Token.objects.create(user=user)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Demo superuser {'created' if created else 'reset'} (a new password each time this runs):",
                    f"  admin:     http://127.0.0.1:{port}/admin/  user {username}  password {password}",
                    f"  API token: Authorization: Token {token.key}",
                    f"  API docs:  http://127.0.0.1:{port}/api/docs/ (log in through the admin first)",
                    "",
                ]
            )
        )

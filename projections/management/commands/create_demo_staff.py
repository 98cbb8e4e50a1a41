import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Create (or reset) the demo staff user for the embedded stack and print its "
        "username, a fresh password and its API token. For local use only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo-staff")

    def handle(self, *args, username, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Demo staff user {'created' if created else 'reset'} (password changes on every `make run`):",
                    f"  admin:     http://127.0.0.1:<PORT>/admin/  user {username}  password {password}",
                    f"  API token: Authorization: Token {token.key}",
                    "  API docs:  /api/docs/ (log in through /admin/ first)",
                    "",
                ]
            )
        )

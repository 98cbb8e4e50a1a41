"""Django settings for eventsourcing-django in the baseline's virtualenv: its one app, on MariaDB.

The connection options are TechBank's (techbank_site/settings.py), so both
write with the same isolation level, character set and SQL mode.
"""

import os
import secrets
from urllib.parse import urlsplit

_url = urlsplit(os.environ["BENCH_PEER_MYSQL_URL"])
SECRET_KEY = secrets.token_urlsafe(50)  # a throwaway process: a new key each run
USE_TZ = True
INSTALLED_APPS = ["eventsourcing_django"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "root",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": str(_url.port or 3306),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "charset": "utf8mb4",
            "isolation_level": "read committed",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
            "connect_timeout": 5,
        },
    }
}

from django.apps import AppConfig


class EntrypointsConfig(AppConfig):
    """The ways in: the APIs, the admin, Celery tasks, management commands. It has no models."""

    name = "entrypoints"
    verbose_name = "Entry points"

    def ready(self) -> None:
        from bootstrap import bootstrap
        from entrypoints.wiring import install

        install(bootstrap())

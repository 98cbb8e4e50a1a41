"""Where the entry points receive the bank's services from the composition root (bootstrap).

The process installs them once at its start: Django's app registry when it is
ready (entrypoints.apps), and each Celery worker process again after the fork
(entrypoints.tasks), so no connection is shared across processes. Views, admin
actions, tasks and management commands then take them from here. Tests that
change the settings install a fresh set (`install(bootstrap())`).
"""

from bootstrap import Services

_installed: Services | None = None


def install(services: Services) -> Services:
    """Hand `services` to this process's entry points; the ones it replaces release their connections."""
    global _installed
    previous, _installed = _installed, services
    if previous is not None and previous is not services:
        previous.close()
    return services


def services() -> Services:
    """The services this process's entry points use (installed when Django was set up)."""
    if _installed is None:
        raise RuntimeError("no services installed: Django is not set up (entrypoints.apps installs them)")
    return _installed

"""The Celery worker's companions: the long-running processes it runs beside itself.

On the Kafka stack, the relay that follows the outbox (`relay_outbox --follow`)
and the projection consumer (`run_projection_consumer`). Each is a child
process of the worker's main process, not a task: they poll continuously (a
task ends, and a Kafka consumer that nobody polls between runs drops out of its
group), and they need no pool slot. A companion that exits is started again;
they stop with the worker (and by themselves if the worker dies: --parent-pid).
"""

import logging
import os
import re
import subprocess
import sys
import time

from celery import bootsteps

logger = logging.getLogger(__name__)


def worker_companions(worker: str) -> list[list[str]]:
    """The management commands the Celery worker `worker` runs beside itself.

    The consumer's static member id is the worker's name: a restarted worker takes its partitions back at once.
    """
    from django.conf import settings

    if settings.TECHBANK_EVENT_BUS == "kafka":
        return [["relay_outbox", "--follow"], ["run_projection_consumer", "--member-id", f"{worker}-projector"]]
    return []  # inline: the request projects; nothing to relay or consume


class Companions(bootsteps.StartStopStep):
    """Starts the worker's companion processes, restarts any that exits, stops them with the worker."""

    requires = {"celery.worker.components:Pool"}  # started after the pool has forked its processes
    CHECK_SECONDS = 2.0
    STOP_SECONDS = 15.0  # a companion finishes its batch first

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.processes: dict[tuple[str, ...], subprocess.Popen] = {}
        self.timer_entry = None

    def start(self, worker):
        from django.conf import settings

        member = re.sub(r"[^A-Za-z0-9._-]", "-", worker.hostname)  # a Kafka group.instance.id's characters
        self.cwd = settings.BASE_DIR
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        for command in worker_companions(member):
            self._start((*manage, *command, "--parent-pid", str(os.getpid())))
        if self.processes:
            self.timer_entry = worker.timer.call_repeatedly(self.CHECK_SECONDS, self._restart_exited)

    def _start(self, command: tuple[str, ...]) -> None:
        self.processes[command] = process = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=self.cwd)
        logger.info("started %s (pid %d)", " ".join(command[2:4]), process.pid)

    def _restart_exited(self) -> None:
        for command, process in list(self.processes.items()):
            if process.poll() is not None:
                logger.warning("%s exited with %s; starting it again", " ".join(command[2:4]), process.returncode)
                self._start(command)

    def stop(self, worker):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + self.STOP_SECONDS
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    terminate = stop

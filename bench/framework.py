"""What every workload shares: measurements, cases run in their own process, timing.

A workload runs each thing it measures (TechBank on one backend, a baseline) as
a *case*: a function run in a fresh Python process with its own environment, so
that Django can be set up for a different database each time and the peak
memory of the case is its own. The case returns a JSON-able dict; the parent
reads the child's peak RSS from the kernel.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_MARKER = "BENCH-RESULT "


@dataclass
class Measurement:
    """One figure, with the baseline it is compared with in the same run.

    `ratio` is always "how many times better than the baseline" (over 1 is
    better): value / baseline for rates, baseline / value for times.
    """

    workload: str
    subject: str
    metric: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    higher_is_better: bool = True
    target: str | None = None
    met: bool | None = None
    details: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value or not self.value:
            return None
        return self.value / self.baseline_value if self.higher_is_better else self.baseline_value / self.value

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class CaseResult:
    result: dict
    peak_rss_mb: float
    wall_seconds: float


class CaseFailed(Exception):
    pass


def run_case(
    target: str, *, env: dict[str, str] | None = None, timeout: float = 3600, python: str | None = None, **kwargs
) -> CaseResult:
    """Run `module:function(**kwargs)` in a new process and return what it returned.

    With DATABASE_URL (or DJANGO_SETTINGS_MODULE) in `env`, Django is set up
    first. The child's stderr (progress bars) passes through; it reports its
    own peak RSS beside the result. `python` runs it under another interpreter
    (a baseline's own virtualenv); the default is this one.
    """
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    started = time.perf_counter()
    process = subprocess.Popen(
        [python or sys.executable, "-m", "bench.case_entry", target, json.dumps(kwargs)],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise CaseFailed(f"{target} took over {timeout} s") from None
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise CaseFailed(f"{target} exited with {process.returncode}")
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        raise CaseFailed(f"{target} printed no result")
    payload = json.loads(lines[-1][len(RESULT_MARKER) :])
    return CaseResult(result=payload["result"], peak_rss_mb=payload["peak_rss_mb"], wall_seconds=wall)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """`with Stopwatch() as watch: ...; watch.seconds`."""

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._started


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (fraction 0.99 = p99)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


Workload = Callable[["object"], list[Measurement]]

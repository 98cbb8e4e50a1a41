"""Run the benchmark suite and print one table; results go to bench/results/ as JSON.

    python -m bench            # the full run (make bench)
    python -m bench --quick    # small sizes, under a minute (make bench-quick; CI runs it)
    python -m bench --only projection rebuild

Every figure is compared with a baseline measured in the same run: the
machines are shared and noisy, so only ratios mean something. Nothing here
asserts a time; --quick fails only if a workload breaks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.framework import ROOT, Measurement
from bench.session import BenchSession

# Run in this order: the cheap ones first, so a quick run shows something early.
WORKLOADS = {
    "long-streams": "bench.workloads.long_streams",
    "commands": "bench.workloads.commands",
    "http": "bench.workloads.http",
    "projection": "bench.workloads.projection",
    "rebuild": "bench.workloads.rebuild",
    "lag": "bench.workloads.lag",
}
RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(measurements: list[Measurement]) -> str:
    rows = [("Workload", "Subject", "Figure", "Baseline", "Ratio", "Target", "Met")]
    for m in measurements:
        met = "-" if m.met is None else ("yes" if m.met else "NO")
        baseline = "-" if m.baseline is None else f"{m.baseline}: {format_number(m.baseline_value)} {m.unit}"
        ratio = "-" if m.ratio is None else f"{m.ratio:.2f}x"
        rows.append(
            (
                m.workload,
                m.subject,
                f"{m.metric}: {format_number(m.value)} {m.unit}",
                baseline,
                ratio,
                m.target or "-",
                met,
            )
        )
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the suite works (under a minute)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(WORKLOADS),
        metavar="WORKLOAD",
        help=f"run only these workloads ({', '.join(WORKLOADS)})",
    )
    parser.add_argument("--output", type=Path, help="where to write the JSON (default: bench/results/<time>.json)")
    args = parser.parse_args(argv)

    started = datetime.now(UTC)
    names = args.only or list(WORKLOADS)
    measurements: list[Measurement] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    with BenchSession(quick=args.quick) as session:
        for name in names:
            print(f"== {name}", file=sys.stderr, flush=True)
            began = time.perf_counter()
            try:
                module = importlib.import_module(WORKLOADS[name])
                measurements.extend(module.run(session))
            except Exception:  # noqa: BLE001 - one failed workload must not stop the others; reported below
                failures[name] = traceback.format_exc()
                print(f"!! {name} failed:\n{failures[name]}", file=sys.stderr, flush=True)
            timings[name] = round(time.perf_counter() - began, 1)

    report = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "workload_seconds": timings,
        "measurements": [m.as_dict() for m in measurements],
        "failures": failures,
    }
    output = args.output or RESULTS / f"{started:%Y%m%dT%H%M%SZ}-{report['mode']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(table(measurements))
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    print(f"\n{len(measurements)} figures in {sum(timings.values()):.0f} s; JSON: {shown}")
    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

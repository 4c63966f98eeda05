"""What the benchmarks print alike: the machine they ran on (so figures can be compared),
their tables, and the verdict they end with."""

from __future__ import annotations

import os
import sys
import time

import threadpoolctl


def blas_lines() -> list[str]:
    """One line per BLAS library loaded in this process: its kind, version and threads."""
    return [
        f"BLAS: {pool['internal_api']} {pool.get('version')} "
        f"({pool['num_threads']} threads) {os.path.basename(pool['filepath'])}"
        for pool in threadpoolctl.threadpool_info()
        if pool["user_api"] == "blas"
    ]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews timings."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def print_verdict(failures: list[str], started: float) -> None:
    """The rows that missed their goal, the wall time since ``started`` and the load."""
    print(f"\nrows failing their goal: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    print(f"total wall time {time.perf_counter() - started:.1f} s; {load_average()}")


def print_table(headers: list[str], rows: list[list[str]], indent: str = "") -> None:
    """Left-aligned columns as wide as their widest cell, under a rule of dashes."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    print(indent + "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True)))
    print(indent + "  ".join("-" * w for w in widths))
    for row in rows:
        print(indent + "  ".join(f"{c!s:<{w}}" for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()

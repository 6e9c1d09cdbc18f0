"""The one timing helper of the speed benchmarks: calls timed in turns (a, b, a, b, ...) after a
warm-up, so that drifts of the machine hit every candidate alike. Ratios come from one run."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_calls(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: bool = True) -> dict[str, list[float]]:
    """``{name: [seconds of each call]}``, the callables run in turns ``repeats`` times.

    Args:
        fns: Named callables without arguments.
        repeats: Timed calls of each.
        warmup: Call each once first, untimed (tracing, caches).

    Returns:
        The seconds of every timed call, per name.
    """
    if warmup:
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: bool = True) -> dict[str, float]:
    """The median seconds of each callable (``time_calls``)."""
    return {name: float(np.median(s)) for name, s in time_calls(fns, repeats, warmup).items()}


def best_seconds(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: bool = True) -> dict[str, float]:
    """The fastest call of each callable (``time_calls``): the machine's best, for throughput."""
    return {name: float(min(s)) for name, s in time_calls(fns, repeats, warmup).items()}

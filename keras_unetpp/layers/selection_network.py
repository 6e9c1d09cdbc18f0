"""Comparator networks that select the median of a k x k window exactly with
min/max operations only, so a median filter runs as plain element-wise tensor
ops on any backend and device (and fuses well under XLA).

How the 5x5 median is found (generic in odd k):

1. Each column of k pixels is sorted once per pixel position (a k-input
   sorting network). Neighbouring windows share these columns.
2. Per window, the k rows of the k x k block (one entry from each column, by
   rank) are sorted. A matrix with sorted columns keeps them sorted when its
   rows are sorted, so the block is then sorted along both axes.
3. In such a matrix, entry (i, j) has at least (i+1)(j+1)-1 entries <= it and
   (k-i)(k-j)-1 entries >= it. Entries that are certainly below or above the
   median are dropped; the median is the entry of rank ``m - |below|`` among
   the remaining candidates, picked by a pruned odd-even merge network.

Every network is pruned backwards from its output: a comparator is kept only if
one of its outputs is needed, and only the needed output (min and/or max) is
computed.
"""

from __future__ import annotations

import functools

Comparator = tuple[int, int, bool, bool]  # (low wire, high wire, need min, need max)


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort for a power-of-two ``n`` (min to the lower wire)."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _padded_sorting_pairs(n: int) -> list[tuple[int, int]]:
    """Sorting network for ``n`` wires: a Batcher network padded to a power of two
    with +inf wires, with every comparator that touches a +inf wire removed.

    A comparator (i, j) with +inf on j is a no-op; with +inf on i only it would
    move the finite value to j, which we express by relabelling the wires
    instead of computing anything.
    """
    size = 1
    while size < n:
        size *= 2
    label = list(range(size))  # physical wire -> logical wire (or >= n for +inf)
    pairs = []
    for i, j in _batcher_pairs(size):
        li, lj = label[i], label[j]
        if lj >= n:
            continue  # min(x, inf) = x stays at i
        if li >= n:
            label[i], label[j] = lj, li  # finite value moves to the max wire
            continue
        pairs.append((li, lj))
    # After the network the logical wire sitting at physical position r holds rank r.
    order = [label[r] for r in range(size) if label[r] < n]
    return pairs, order


@functools.lru_cache(maxsize=None)
def sorting_network(n: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Comparators sorting ``n`` wires and, for each rank, the wire holding it."""
    return _padded_sorting_pairs(n)


def prune(pairs, outputs) -> list[Comparator]:
    """Keeps only comparators (and comparator halves) that feed ``outputs``."""
    needed = set(outputs)
    kept = []
    for low, high in reversed(pairs):
        need_min, need_max = low in needed, high in needed
        if need_min or need_max:
            kept.append((low, high, need_min, need_max))
            needed.update((low, high))
    kept.reverse()
    return kept


@functools.lru_cache(maxsize=None)
def median_plan(k: int):
    """The plan for the median of a k x k window.

    Returns:
        ``(column_network, column_ranks, window_network, output_wire)``:
            ``column_network`` sorts the k pixels of a column (wires = vertical
            offsets 0..k-1), ``column_ranks[r]`` is the wire holding rank ``r``;
            ``window_network`` acts on wires ``r * k + c`` = rank-``r`` entry of
            column offset ``c`` and leaves the median on ``output_wire``.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"The median window size must be odd and positive, got {k}.")
    column_pairs, column_ranks = sorting_network(k)
    column_network = prune(column_pairs, column_ranks)
    if k == 1:
        return column_network, column_ranks, [], 0
    m = (k * k - 1) // 2
    window_pairs = []
    row_pairs, row_ranks = sorting_network(k)
    sorted_entry = {}
    for r in range(k):  # sort each row across the k columns
        window_pairs += [(r * k + a, r * k + b) for a, b in row_pairs]
        for j in range(k):
            sorted_entry[r, j] = r * k + row_ranks[j]
    below = [e for e, w in sorted_entry.items() if (k - e[0]) * (k - e[1]) - 1 >= m + 1]
    above = [e for e, w in sorted_entry.items() if (e[0] + 1) * (e[1] + 1) - 1 >= m + 1]
    candidates = [w for e, w in sorted(sorted_entry.items()) if e not in below and e not in above]
    cand_pairs, cand_ranks = sorting_network(len(candidates))
    window_pairs += [(candidates[a], candidates[b]) for a, b in cand_pairs]
    output = candidates[cand_ranks[m - len(below)]]
    return column_network, column_ranks, prune(window_pairs, [output]), output


def apply_network(wires: list, network: list[Comparator], minimum, maximum) -> list:
    """Runs a pruned comparator network on a list of values (tensors or arrays)."""
    wires = list(wires)
    for low, high, need_min, need_max in network:
        a, b = wires[low], wires[high]
        if need_min:
            wires[low] = minimum(a, b)
        if need_max:
            wires[high] = maximum(a, b)
    return wires

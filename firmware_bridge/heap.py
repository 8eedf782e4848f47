"""A long-lived process's start-up heap, kept out of the garbage collector's later passes."""

from __future__ import annotations

import gc


def settle_heap() -> int:
    """Collect once, then move every object alive into the permanent generation; how many.

    Called once a portal worker, a bridge or a simulated day has started. What the stack
    builds at start-up (web3 and its contracts' ABIs, the market, 200 boards, their clients
    and agents: ~10^6 objects) lives for the whole day, yet every full
    collection walked all of it again, holding the interpreter for seconds on a loaded
    2-core machine (~0.5 s for the imports alone): long enough that no heartbeat, reply or
    reading moved and the boards' 5 s failsafes tripped by the dozen at once. Frozen, a full
    collection walks only what the day made since (gc.freeze, as the gc docs advise for
    long-lived processes).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

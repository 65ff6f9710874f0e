"""`python -m bot serve` moves what start-up built out of the garbage collector's way."""

from __future__ import annotations

import gc

from bot.web.server import freeze_startup_heap


class Probe:
    """An object the collector tracks."""


def test_freeze_startup_heap_leaves_only_later_objects_to_the_collector() -> None:
    """Before: every full collection walked the language detector's models and the rest of
    start-up again, ~70 ms inside whichever request set it off (docs/benchmarks.md)."""
    gc.unfreeze()
    survivor = Probe()
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert not any(o is survivor for g in range(3) for o in gc.get_objects(generation=g))
        later = Probe()
        assert any(o is later for o in gc.get_objects(generation=0))
    finally:
        gc.unfreeze()

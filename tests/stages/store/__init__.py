"""Unit tests of stages/store/: the cache, its faults and the per-segment locks."""

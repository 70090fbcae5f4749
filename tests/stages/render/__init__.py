"""Unit tests of stages/render/: generation helpers, colour drift, overlap joins, transitions,
audio."""

"""Unit tests of stages/media/: video I/O and atomic writes."""

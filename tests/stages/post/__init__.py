"""Unit tests of stages/post/: the registry and each post stage on synthetic media."""

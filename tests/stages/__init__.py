"""Unit tests of stages/, one folder per capability."""

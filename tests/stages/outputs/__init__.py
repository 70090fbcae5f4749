"""Unit tests of stages/outputs/: contact sheets."""

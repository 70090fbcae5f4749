"""Unit tests of stages/plan/: plans, chaining, camera paths, content keys, profiles."""

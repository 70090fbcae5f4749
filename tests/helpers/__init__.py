"""Helpers shared by tests and benchmarks: tiny pipelines, synthetic engines and media, storyboards,
subprocess programs. No tests here."""

"""The test suite: unit tests mirroring the source folders, integration tests, deployment tests,
perf."""

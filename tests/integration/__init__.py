"""Integration tests, all marked slow (tests/conftest.py): the real Prefect flow, the CLIs as
subprocesses, end-to-end renders, crashes and exit statuses."""

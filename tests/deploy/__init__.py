"""Deployment tests: prefect.yaml, workers on a real local Prefect server, shared storage."""

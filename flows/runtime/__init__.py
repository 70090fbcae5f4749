"""Process plumbing shared by every command: exit statuses and the Hydra wrapper (hydra_cli),
the stop flag and the Ctrl-C handler (stop), Prefect's local API, started patiently (prefect_api),
and the machine's shared background API server (local_api). Imports nothing else from flows/."""

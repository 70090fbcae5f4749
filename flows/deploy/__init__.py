"""Work across renders and machines: the series flow that composes each episode's settings and
renders it here or on the work pool's workers (series_plan, series_flow, series_summary), and
publishing finished episodes (publish). The deployments themselves are declared in prefect.yaml
and served by `python -m flows.serve`; jobs are submitted with `python -m flows.submit`."""

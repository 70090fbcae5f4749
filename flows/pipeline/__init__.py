"""One render of one storyboard: prepare (validate, plan, build the engine; writes nothing),
preflight (will the disk hold it), the Prefect flow with its tasks (flow), one worker per segment
and one segment per GPU (segment_guard), what the user sees (progress), manifest/report
publishing (report) and re-rendering on every save (watch). Imports flows.config and
flows.runtime, never flows.deploy."""

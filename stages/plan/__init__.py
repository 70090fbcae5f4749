"""The render plan: a validated storyboard turned into a DAG of segment jobs with content keys.

model (the dataclasses: SegmentJob, ShotPlan, RenderPlan); build (build_plan, shot by shot);
timing (segment lengths and the prompt schedule); inputs (seeds, engine params); bridges
(generated transitions); chaining, camera, profiles; keys (hashing) and job_keys (a segment's
key, derived from SegmentJob's fields).
"""

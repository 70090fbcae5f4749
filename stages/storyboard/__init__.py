"""The storyboard language: what a storyboard file may say and what it means.

schema (the typed models) and units (durations, resolutions); yaml_source (loading with line
numbers) and problems (how a problem is reported); image_refs (the confining resolver of every
file a storyboard names); resolve (the one inheritance rule, defaults -> shot -> segment, shared
by validation and planning); validate (runs the checks: schema_errors, checks.shot,
checks.episode) and returns a ValidatedStoryboard.
"""

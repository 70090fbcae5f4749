"""The checks validation runs: the schema's own errors made readable (schema_errors), each
shot (shot), what spans shots (episode: ids, bridges, transitions, profiles) and the cast
(cast: members, references, placeholders). stages.storyboard.validate runs them in order."""

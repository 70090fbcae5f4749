"""Unit tests of stages/storyboard/: schema, validation, hostile and bad input, confinement and
security."""

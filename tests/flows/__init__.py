"""Unit tests of flows/: settings defaults, composition, the series, schema, cache and enhance
commands."""

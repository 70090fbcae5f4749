"""Unit tests of engine/: the preview engine, the registry, camera geometry."""

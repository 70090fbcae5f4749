"""Rendering steps: segments (generation with fallback, colour drift, overlap join) and shots, transitions, audio and the assembly of the episode."""

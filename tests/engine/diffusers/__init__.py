"""Unit tests of engine/diffusers/ on tiny random-weight pipelines: families, chaining, model files,
the pool, parallel generation, GPU options."""

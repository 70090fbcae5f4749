"""Retiming stages: `interpolate` (more frames per second) and `slowmo` (more frames at the same
fps), on one exact resampling grid (resample.py), with four ways to synthesise in-between frames:
our DIS optical flow, a plain blend, ffmpeg's minterpolate (minterpolate.py) and RIFE weights
(rife.py, the only one that loads a model)."""

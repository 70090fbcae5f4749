"""Post-processing: a registry of stages run on a shot's frames (or any video, flows.enhance).

- registry.py: the one stage interface (StageDef) and `register`; every module under this package
  that defines a stage registers it when imported, so a new stage is one module plus a preset.
- chain.py: parses and validates chains (presets, parameters, files), predicts frames/fps/size,
  warns about orderings, preloads models and streams frames through the steps.
- stream.py: PostFrame (a frame and its scene-cut flag) and the cut-aware sliding window.
- stages: scene_detect.py, smooth.py, deflicker.py, color.py (+ lut.py, .cube tables), loop.py,
  retime/ (interpolate and slowmo: exact resampling grid, ffmpeg minterpolate, RIFE weights),
  upscale/ (Lanczos or Real-ESRGAN-style weights).
- interpolate.py: our DIS optical-flow interpolator (also used by shot transitions and overlap
  joins); weights.py: reading checkpoints for the model-backed stages (torch loads lazily).
"""

"""The `upscale` stage (stage.py): Lanczos/bicubic resizing, or a Real-ESRGAN-style model
(esrgan.py) that the stage loads itself when `model:` is set."""

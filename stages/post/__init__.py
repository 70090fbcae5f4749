"""Post-processing: the chain of post stages and each stage (interpolation, smoothing, colour, upscaling, retiming, loops) with the models some of them load."""

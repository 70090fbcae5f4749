"""Human pose from video frames (a local transformers ViTPose model) and its drawing as the
OpenPose-style skeleton that pose-conditioned video models read."""

"""The performer in a video: body keypoints from a local transformers ViTPose model (estimate),
drawn as the OpenPose-style skeleton pose-conditioned video models read (draw), and the face
track Wan-Animate's face encoder reads (face: from the head keypoints, or a face detector)."""

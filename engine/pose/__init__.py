"""The performer in a video: body keypoints from a local transformers ViTPose model (estimate),
drawn as the OpenPose-style skeleton pose-conditioned video models read (draw), and the face
track Wan-Animate's face encoder reads (face: from the head keypoints, or a face detector)."""

# Part of every key that pose feeds (an animate segment's, its cached keypoints', a pose control
# clip's): bump when the keypoints or their drawing change for the same inputs, so no cached
# segment made from the old ones is served.
REVISION = 1

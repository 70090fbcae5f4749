"""Control videos (storyboard `control:`): a clip turned frame by frame into depth, edges, grey,
optical flow or pose, which guides the engine (wan_vace's control video, the preview's blend).

job (what a segment's control is, in its key), extract (one function per kind), clip (sampling
the source at the plan's fps and size, the cached extraction, a segment's slice), plan (the
planner's side), checks (validation), pose_clip (an animate shot's keypoints from its driving
video), publish (renders/NAME/control/<shot>.mp4).
"""

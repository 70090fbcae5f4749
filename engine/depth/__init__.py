"""Depth for 2.5D camera moves: depth map files, estimation by a local model, pinhole camera
math for dolly / truck / pedestal / orbit / dolly zoom / focus, and the depth warp."""

"""Media I/O: ffmpeg, probing, video reading and writing, PNG frames and atomic file writes."""

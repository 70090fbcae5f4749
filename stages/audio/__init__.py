"""Audio-reactive schedules: soundtrack analysis (analysis) and the values it drives (schedules)."""

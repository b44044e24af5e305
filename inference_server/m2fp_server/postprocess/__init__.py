"""Engine-agnostic mask post-processing: classes → alpha, smoothing, resizing."""

"""Ground truth and measurement: cutouts, synthetic clips with exact masks, metrics."""

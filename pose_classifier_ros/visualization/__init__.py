"""Seeing the results and using them: image annotations (ImageMarker) and the debug overlay, per-track
best views and sightings for re-identification, contact sheets, and the `annotate` tool for one image.
ROS-free (message classes come in through a `types` namespace); imports `stream`, `model`, `labels`."""

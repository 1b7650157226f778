"""Sinks: where processed frames go (virtual camera, files, preview)."""

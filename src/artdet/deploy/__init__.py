"""Deployment: SavedModel and TFLite export, the Detector runtime, detection on media, the HTTP server."""

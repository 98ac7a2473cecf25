"""The delivery engine: ids, wire rendering and the background dispatcher (private)."""

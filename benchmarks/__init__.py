"""Side-by-side benchmarks of our SDK and server against the published SDK (BENCHMARKS.md)."""

"""Driftline's benchmarks; each module has a `run()` entry point and runs standalone."""

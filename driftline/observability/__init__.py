"""Logs with correlation ids, the catalogue of Prometheus metrics, and tracing helpers."""

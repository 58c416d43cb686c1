"""Drift detection: calibrated detectors, one report type, severity rules, the monitor, the API.

Nothing is imported here so that the API (mounted in serving's ingress) loads without scipy;
import from the modules: `driftline.drift.calibration.calibrate`, `driftline.drift.report`, ...
"""

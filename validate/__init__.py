"""Validation against real OpenCL devices: microbenchmarks, calibration, replay, comparison."""

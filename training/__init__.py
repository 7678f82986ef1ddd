"""Operator entry point: `python -m training` trains, publishes and manages model versions."""

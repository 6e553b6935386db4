"""Orchestration: the run directory, its manifest, and the stages chained by `safer run`."""

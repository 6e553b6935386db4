"""Orchestration: the stage registry (registry.py: every stage declared once), the planner that decides what
reruns and why (plan.py), the runner with its stage locks (runner.py, locks.py), the run directory and its
manifest (rundir.py), and the summary of a run (summary.py). The stage functions are in stages/."""

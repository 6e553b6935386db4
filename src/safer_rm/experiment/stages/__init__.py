"""The stage functions: each loads what it reads from the run directory, calls one piece of domain code and
writes its artifacts; `run(ctx, key) -> info`. Which stage needs which, and when it reruns, is declared in
experiment/registry.py, not here."""

"""Logging of a `safer` command: to the terminal, and to the run's log.txt."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(quiet: bool, run_dir: str | None = None) -> None:
    """Terminal: INFO (or WARNING with --quiet), with progress bars only when stderr is a terminal. The run's
    log.txt: INFO lines, one per stage from the runner, no progress bars."""
    level = logging.WARNING if quiet else logging.INFO
    if quiet or not sys.stderr.isatty():
        os.environ["TQDM_DISABLE"] = "1"  # progress bars only where a terminal shows them
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # and none of transformers' (loading, saving)
        if "huggingface_hub" in sys.modules:  # read at import: loaded already (e.g. by a test), tell it now
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    if run_dir:
        os.makedirs(run_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(run_dir, "log.txt"), encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        fh.setLevel(logging.INFO)
        fh.addFilter(lambda record: record.name != "safer_rm.stages.start")  # the file: one line per stage
        root.addHandler(fh)
    for noisy in ("transformers", "datasets", "httpx", "urllib3", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

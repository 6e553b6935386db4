#!/usr/bin/env bash
# Install PyTorch into the virtual environment before the project, so that the project's unpinned
# "torch" requirement is already satisfied and pip never pulls a second build.
#   1. torch already importable: keep it.
#   2. SAFER_TORCH_SPEC set: install exactly that (e.g. "torch==2.5.1 --index-url ...").
#   3. the local CPU wheel torch==2.13.0 is reachable without an index (this workplace's find-links):
#      install it, then its dependencies.
#   4. otherwise: whatever `pip install torch` picks for this platform.
set -euo pipefail
py="${1:-.venv/bin/python}"
if "$py" -c "import torch" 2>/dev/null; then
  echo "torch $("$py" -c 'import torch; print(torch.__version__)') already installed"
  exit 0
fi
if [ -n "${SAFER_TORCH_SPEC:-}" ]; then
  # shellcheck disable=SC2086
  "$py" -m pip install $SAFER_TORCH_SPEC
  exit 0
fi
if "$py" -m pip install -q --no-index --no-deps torch==2.13.0 >/dev/null 2>&1; then
  "$py" -m pip install -q torch==2.13.0
  echo "installed the local CPU build torch $("$py" -c 'import torch; print(torch.__version__)')"
  exit 0
fi
"$py" -m pip install torch

"""`python -m bench.gpu_check ...`: see cli.py."""

import sys

from .cli import main

sys.exit(main())

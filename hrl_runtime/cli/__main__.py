"""``python -m hrl_runtime.cli``: the same as the ``hrl`` console script."""

import sys

from hrl_runtime.cli import main

sys.exit(main())

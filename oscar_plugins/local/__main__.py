"""``python -m oscar_plugins.local {up,status,down,serve}``."""

import sys

from oscar_plugins.local.cli import main

sys.exit(main())

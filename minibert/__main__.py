"""`python -m minibert COMMAND ...`: the `minibert` command line."""

import sys

from .cli import main

sys.exit(main(prog="minibert"))

"""`python -m mtlrec` is the `mtlrec` command."""

import sys

from mtlrec.cli import main

sys.exit(main())

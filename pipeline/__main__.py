"""`python -m pipeline` is the `mtlrec` command."""

import sys

from pipeline.cli import main

sys.exit(main())

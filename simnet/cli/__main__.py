"""`python -m simnet.cli`: the `simnet` command."""

import sys

from simnet.cli import main

sys.exit(main())

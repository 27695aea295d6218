"""`python -m simnet.trace replay|show TRACE`: the trace commands without the `simnet` CLI."""

import sys

from simnet.trace.commands import main

sys.exit(main())

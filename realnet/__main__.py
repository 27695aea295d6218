"""`python -m realnet serve ...` is the `realnet` command."""

import sys

from realnet.cli import main

sys.exit(main())

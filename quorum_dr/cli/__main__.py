"""`python -m quorum_dr.cli`: the same as `drctl`."""

import sys

from quorum_dr.cli import main

sys.exit(main())

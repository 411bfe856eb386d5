"""`python -m ops.restore_verification`: the command the weekly Cloud Run job runs."""

import sys

from ops.restore_verification.weekly import main

sys.exit(main())

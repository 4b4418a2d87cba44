"""``python -m dsen2cr.cli`` (e.g. under ``torchrun``) is the ``dsen2cr`` command."""

import sys

from dsen2cr.cli.main import main

sys.exit(main())

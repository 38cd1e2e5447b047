"""``python -m crm_desktop``: the same as the ``crm-desktop`` command."""

from __future__ import annotations

import sys

from crm_desktop.cli import main

sys.exit(main())

"""The packaged app's entry point: the ``crm-desktop`` command, frozen by PyInstaller (packaging/crm-desktop.spec)."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    # Demo mode serves the sandbox CRMs from a spawned child process; in a frozen app that child is this same
    # executable, and freeze_support() turns it into the child instead of a second app.
    multiprocessing.freeze_support()
    from crm_desktop.cli import main

    sys.exit(main())

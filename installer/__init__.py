"""The installer: one for every system, in Python's standard library only (it runs
before the venv exists, under whichever Python 3 the user has). install.sh (Linux,
macOS) and install.ps1 (Windows) find that Python and run `python -m installer`.

    python_env.py   the venv: Python's version, pip, the GPU builds, the backend recorded
    gimps.py        every GIMP 3 on this computer: its plug-ins folder, the settings its plug-in reads, its sandbox
    plugin.py       the plug-in copied into a GIMP, and client.json (how it finds and starts the daemon)
    services.py     the daemon (or the relay) as a user service: systemd, launchd, a Windows logon task
    __main__.py     the options, and the steps in order

Where the user's files go is deepdream_client.paths (daemon/), shared with the daemon
and the plug-in, so that what the installer writes they find."""

import sys
from pathlib import Path

MIN_PYTHON = (3, 11)  # tomllib (the daemon's settings); pyproject.toml's requires-python says the same

# The client library's paths and deepdream_common (standard library only), shared with the daemon and the plug-in.
# This runs before any venv has them installed, so from the checkout.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent / folder) for folder in (".", "daemon")]

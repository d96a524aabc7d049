"""python -m deepdream_daemon: the daemon as Windows' logon task runs it, under
pythonw.exe so that no console window opens; its log then goes to daemon.log."""

import sys

from deepdream_client.paths import log_without_console

from .main import main

log_without_console("daemon.log")
sys.exit(main())

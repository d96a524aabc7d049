"""python -m deepdream_cli: the CLI, as Windows' logon task runs `relay` under
pythonw.exe so that no console window opens; its log then goes to relay.log."""

import sys

from deepdream_client.paths import log_without_console

from .cli import main

log_without_console("relay.log")
sys.exit(main())

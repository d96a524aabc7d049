"""The computer the installer works on: its system, its environment and the
commands it runs, in one object that the tests make for a Windows, a macOS, a
Flatpak or a Snap home they fake on Linux."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from deepdream_client import paths


class Host:
    def __init__(self, system=sys.platform, environ=None, runner=None):
        self.system = "linux" if system.startswith("linux") else system  # sys.platform: linux, darwin, win32
        self.environ = dict(os.environ if environ is None else environ)
        self.environ.pop("PYTHONPATH", None)  # install.sh's, to find this package: not for the programs it runs
        self._runner = runner  # the tests' stand-in for subprocess.run: (argv) -> (returncode, output)

    @property
    def windows(self):
        return self.system == "win32"

    @property
    def home(self):
        return paths.home(self.environ, self.system)

    def config_file(self, name):
        return paths.config_file(name, self.environ, self.system)

    def cache_file(self, name):
        return paths.cache_file(name, self.environ, self.system)

    def env_path(self, variable, fallback):
        """A folder named by an environment variable (APPDATA, XDG_CONFIG_HOME, ...), else home/fallback."""
        value = self.environ.get(variable)
        return Path(value) if value else self.home / fallback

    def which(self, program):
        return shutil.which(program, path=self.environ.get("PATH"))

    def run(self, argv, timeout=120):
        """(exit status, stdout and stderr together); 127 when the program is not there."""
        if self._runner is not None:
            return self._runner([str(arg) for arg in argv])
        try:
            done = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, timeout=timeout,
                                  env=self.environ, errors="replace")
        except FileNotFoundError:
            return 127, f"{argv[0]}: not found"
        except (OSError, subprocess.TimeoutExpired) as error:
            return 126, str(error)
        return done.returncode, (done.stdout + done.stderr).strip()

    def venv_program(self, venv, name):
        """A program in the venv: bin/NAME, or Scripts\\NAME.exe on Windows."""
        return Path(venv) / ("Scripts" if self.windows else "bin") / (name + (".exe" if self.windows else ""))

"""The project's venv: created with the Python running the installer, the package
installed into it with pip (editable, from this folder), the GPU builds where a GPU
is seen, and the Keras backend recorded in daemon.toml."""

import hashlib
import json
import sys
import venv
from pathlib import Path

from . import MIN_PYTHON

REPO = Path(__file__).resolve().parent.parent


class InstallError(RuntimeError):
    """A step that failed, said in a sentence with what to do."""


def check_python(version=sys.version_info, system=sys.platform):
    """Refuse a Python older than the project's oldest (the daemon reads daemon.toml with tomllib)."""
    if tuple(version[:2]) >= MIN_PYTHON:
        return
    wanted = ".".join(map(str, MIN_PYTHON))
    where = {"win32": "from python.org (or: winget install Python.Python.3.12), then run install.ps1 again",
             "darwin": "from python.org (or: brew install python@3.12), then run install.sh again"}.get(
        system, "(Debian 12 and Ubuntu 24.04 have it as python3; or your distribution's python3.12), then run "
                "install.sh again")
    raise InstallError(f"DeepDream needs Python {wanted} or newer, and this is Python "
                       f"{version[0]}.{version[1]}. Install a newer Python {where}.")


def make_venv(host, path, say):
    """The venv's python, creating the venv first when there is none."""
    python = host.venv_program(path, "python")
    if not python.exists():
        say(f"Creating {path}")
        try:
            venv.EnvBuilder(with_pip=True).create(path)
        except Exception as error:  # noqa: BLE001 - ensurepip's and venv's failures are many; all mean the same
            advice = (" Install the venv module: sudo apt install python3-venv" if host.system == "linux" else "")
            raise InstallError(f"Could not create the venv {path}: {error}.{advice}") from None
    return python


def pip_install(host, python, arguments, log):
    """pip install ARGUMENTS into the venv; its output goes to `log`, shown when it fails."""
    status, output = host.run([python, "-m", "pip", "install", "--disable-pip-version-check", *arguments],
                              timeout=3600)
    log.write_text(output + "\n")
    if status != 0:
        raise InstallError(f"pip failed ({' '.join(map(str, arguments))}):\n{output[-3000:]}\n"
                           f"(the whole log is in {log})")


def extras(dev, backend):
    """The package's extras for these options: CI tests the JAX backend beside TensorFlow."""
    wanted = ({"test", "jax"} if dev else set()) | ({backend} if backend in ("jax", "torch") else set())
    return f"[{','.join(sorted(wanted))}]" if wanted else ""


def nvidia_gpu(host):
    """The first NVIDIA GPU's name as nvidia-smi lists it, else None."""
    status, output = host.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return output.splitlines()[0].strip() if status == 0 and output.strip() else None


def cuda_packages(host, backend):
    """The CUDA builds for a GPU seen: TensorFlow's CUDA wheels exist for Linux only."""
    if host.system != "linux":
        return []
    return ["tensorflow[and-cuda]"] + (["jax[cuda12]"] if backend == "jax" else [])


def record_backend(host, backend):
    """backend = "NAME" as daemon.toml's first line (a key before any [table] is top-level), replacing one
    already there; the daemon's --backend and DEEPDREAM_BACKEND still win. The file's path."""
    path = host.config_file("daemon.toml")
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [line for line in (path.read_text().splitlines() if path.exists() else [])
            if not line.split("=")[0].strip() == "backend"]
    path.write_text("\n".join([f'backend = "{backend}"  # written by the installer (--backend)', *kept]) + "\n")
    return path


def installed_for(venv_dir, extras_wanted):
    """True when the venv's last install was from this pyproject.toml with these extras (or more): pip would
    change nothing (the package is editable, so code changes are live), and running the installer again to add
    --service or a GIMP takes seconds."""
    installed = _extras_installed(venv_dir)
    return installed is not None and set(_names(extras_wanted)) <= installed


def stamp(venv_dir, extras_done):
    """Remember what the venv now holds (see installed_for): pip leaves the extras of an earlier install there."""
    extras = set(_names(extras_done)) | (_extras_installed(venv_dir) or set())
    (Path(venv_dir) / STAMP).write_text(json.dumps({"pyproject": _pyproject_hash(), "extras": sorted(extras)}))


def _extras_installed(venv_dir):
    """The extras the venv's stamp records for this pyproject.toml; None when it has no stamp for it."""
    try:
        record = json.loads((Path(venv_dir) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("pyproject") != _pyproject_hash():
        return None
    return set(record.get("extras") or [])


STAMP = "deepdream-install.json"


def _names(extras_text):
    return sorted(filter(None, extras_text.strip("[]").split(",")))


def _pyproject_hash():
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()

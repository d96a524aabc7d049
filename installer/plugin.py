"""The plug-in put into a GIMP, and the client.json its plug-in reads.

The plug-in folder holds deepdream.py (executable where GIMP needs it: Linux and
macOS) and its modules (the dialog, the canvas, the pixels), the client library
and the facts it shares (pure Python, daemon/deepdream_client and
deepdream_common) and msgpack's pure-Python files, taken
from the venv's msgpack (which falls back to them without its compiled part):
GIMP's own Python needs nothing installed, and the client speaks ZMTP itself
where pyzmq is missing. The new copy is written beside the old one and swapped
in, so GIMP never finds half a plug-in."""

import json
import os
import shutil
from pathlib import Path

from deepdream_common.quoting import command_line
from deepdream_common.vocabulary import DEFAULT_ENDPOINT

REPO = Path(__file__).resolve().parent.parent
FOLDER = "deepdream"  # GIMP 3 runs plug-ins/NAME/NAME.py


def copy_plugin(plugins, msgpack_dir, executable=True):
    """Put the plug-in into the GIMP plug-ins folder `plugins` (made when missing); its folder."""
    plugins = Path(plugins)
    plugins.mkdir(parents=True, exist_ok=True)
    dest, new = plugins / FOLDER, plugins / (FOLDER + ".new")
    shutil.rmtree(new, ignore_errors=True)
    (new / "deepdream_client").mkdir(parents=True)
    (new / "deepdream_common").mkdir()
    for source in sorted((REPO / "gimp_plugin" / FOLDER).glob("*.py")):  # deepdream.py and its modules
        shutil.copyfile(source, new / source.name)
    if executable:
        os.chmod(new / "deepdream.py", 0o755)
    for package in (REPO / "daemon" / "deepdream_client", REPO / "deepdream_common"):
        for source in sorted(package.glob("*.py")):
            shutil.copyfile(source, new / package.name / source.name)
    shutil.copytree(msgpack_dir, new / "msgpack", ignore=lambda folder, names: [
        name for name in names if not name.endswith(".py")])  # its compiled part would not load in GIMP's Python
    for license_file in _licenses(Path(msgpack_dir)):  # its Apache 2.0 license goes wherever its code goes
        shutil.copyfile(license_file, new / "msgpack" / license_file.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(new, dest)
    return dest


def _licenses(package_dir):
    """The license files of the installed distribution `package_dir` came from (its dist-info's licenses/
    folder, or COPYING and LICENSE files at the dist-info's top, as older wheels had them)."""
    for info in sorted(package_dir.parent.glob(f"{package_dir.name}-*.dist-info")):
        found = sorted(path for path in (info / "licenses").rglob("*") if path.is_file())
        found = found or sorted(path for path in info.iterdir() if path.name.upper().startswith(("COPYING", "LICENSE")))
        if found:
            return found
    return []


def record_client(path, start_command, service_start=None, system=None):
    """Write into the client.json at `path` how GIMP starts the daemon ("start_command") and where it
    looks for it ("endpoint", kept when set), and the command that starts the installed service
    ("service_start"), keeping the user's other keys. Returns what to tell the user."""
    path = Path(path)
    try:
        settings = json.loads(path.read_text())
    except FileNotFoundError:
        settings = {}
    except (OSError, ValueError) as error:
        settings = error
    if not isinstance(settings, dict):
        reason = settings if isinstance(settings, Exception) else "not a JSON object"
        return (f"{path} could not be read ({reason}); left it alone: GIMP cannot start the daemon by itself "
                f"until it is fixed (or removed) and the installer runs again")
    wanted = {**settings, "start_command": [str(arg) for arg in start_command]}
    wanted.setdefault("endpoint", DEFAULT_ENDPOINT)
    if service_start:
        wanted["service_start"] = service_start
    if wanted != settings:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(wanted, indent=2) + "\n")
        os.replace(temporary, path)
    # Another folder's install may have recorded its own daemon: replacing it changes which daemon GIMP
    # starts, so say so, with what it was.
    shown = command_line(wanted["start_command"], system)
    before = settings.get("start_command")
    if before is None:
        return f"GIMP starts the daemon when needed with {shown} (recorded in {path})"
    if before != wanted["start_command"]:
        was = command_line(before, system) if isinstance(before, list) else json.dumps(before)
        return f"Changed {path}: GIMP now starts the daemon with {shown}, no longer with {was}"
    return f"GIMP starts the daemon when needed with {shown} ({path}, unchanged)"

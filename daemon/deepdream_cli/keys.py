"""`deepdream keys NAME`: a CURVE key pair in the files zmq.auth reads, the secret one private from its first byte.

NAME.key is public (a daemon's owner puts a client's in the daemon's authorized_clients/, and every client needs
the daemons' server.key); NAME.key_secret stays on the computer it was made for. The daemon refuses a key folder
or secret key others may read, as ssh does: the folder is made 0700 and the secret 0600."""

import os
from pathlib import Path


class KeysExist(Exception):
    """The pair is there already: a second one would lock out whoever has the first."""


def make_pair(folder, name):
    """(public file, secret file) of a new pair NAME in `folder` (made 0700 when missing); KeysExist if either
    file is there."""
    import zmq.auth  # pyzmq: the CLI's commands that make keys or use CURVE need it, the rest do not

    folder = Path(folder).expanduser()
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    existing = [path for path in (public, secret) if path.exists()]
    if existing:
        raise KeysExist(f"{existing[0]} exists already; a new pair would lock out everyone who uses it: choose "
                        f"another name, or move it away first")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret is never readable by others, not even before the chmod
    try:
        zmq.auth.create_certificates(str(folder), name)
    finally:
        os.umask(old_umask)
    public.chmod(0o644)  # public on purpose: it is handed to others
    return public, secret

"""The user's own networks: the Keras model files in a models folder, found by
name. Standard library only, so that the daemon's I/O thread and its tests can
list them without loading Keras (dream_engine.networks loads them)."""

from pathlib import Path

from deepdream_common.vocabulary import MODEL_FILE_SUFFIXES


def find_model_files(folder):
    """{stem: path} of the Keras model files (*.keras, *.h5) directly in `folder`;
    {} when there is no such folder. Where NAME.keras and NAME.h5 both exist, NAME is the .keras one."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return {}
    files = {}
    for suffix in reversed(MODEL_FILE_SUFFIXES):
        files.update({path.stem: path for path in sorted(folder.glob(f"*{suffix}")) if path.is_file()})
    return dict(sorted(files.items()))

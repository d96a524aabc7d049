"""Benchmarks: the reference article's loop against the project on the same job,
in the same run, plus the large-image jobs that show memory follows the tile.
Run `python -m bench --help`."""

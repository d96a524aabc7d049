import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "gimp"))
from harness import VERSIONS, GimpRoot, root_or_skip


@pytest.fixture(scope="session")
def engine():
    """The real InceptionV3 graph with seeded random weights: ImageNet weights
    need a download these machines cannot make."""
    from dream_engine import DreamEngine

    return DreamEngine(weights="random", precision="float32")


@pytest.fixture(scope="module")
def daemon():
    """A real deepdream-daemon (random weights, float32) on a free loopback port,
    shared by one test module; see tests/daemon_process.py."""
    from daemon_process import start_daemon

    with start_daemon() as process:
        yield process


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"gimp{version}" for version in VERSIONS])
def gimp(request):
    """A GIMP 3 test root with this run's plug-in installed in its own config folder: every test that uses it
    runs once per GIMP series (ids gimp3.0, gimp3.2), each in that series' root."""
    gimp = GimpRoot(root_or_skip(request.param), request.param).setup()
    yield gimp
    gimp.cleanup()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """The groups pytest-xdist's --dist loadgroup (pyproject's addopts) keeps on one worker: a test module, so its
    module-scoped daemon starts once, and in the GIMP module a GIMP version, so the two versions run side by side."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        version = callspec.params.get("gimp") if callspec else None
        item.add_marker(pytest.mark.xdist_group(item.path.stem + (f"-gimp{version}" if version else "")))


# Under CI nothing of the mission may be skipped: a skip there (a missing GIMP
# root, say) turns the run red instead of quietly proving less.
_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") == "true" and _skipped and exitstatus == 0:
        print(f"\nCI=true: {len(_skipped)} test(s) were skipped, which CI does not allow: {', '.join(_skipped)}")
        session.exitstatus = 1

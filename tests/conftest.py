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
    shared by one test module; see bench/daemon_process.py."""
    from bench.daemon_process import start_daemon

    with start_daemon() as process:
        yield process


GIMP_IDS = [f"gimp{version}" for version in VERSIONS]


@pytest.fixture(scope="module", params=VERSIONS, ids=GIMP_IDS)
def gimp(request):
    """A GIMP 3 test root with this run's plug-in installed in its own config folder: every test that uses it
    runs once per GIMP series (ids gimp3.0, gimp3.2), each in that series' root."""
    gimp = GimpRoot(root_or_skip(request.param), request.param).setup()
    yield gimp
    gimp.cleanup()


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, known only where it is installed
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's work units (pyproject's addopts run two workers): a test module, so that its module-scoped
    daemon starts once, and in the GIMP module a GIMP version, so that 3.0 and 3.2 run side by side."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleAndGimpVersion(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module, _, test = nodeid.partition("::")
            version = next((gimp_id for gimp_id in GIMP_IDS if test.endswith(f"[{gimp_id}]")), "")
            return f"{module} {version}"

    return ByModuleAndGimpVersion(config, log)


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


import pytest


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

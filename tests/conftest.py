import pytest


@pytest.fixture(scope="session")
def engine():
    """The real InceptionV3 graph with seeded random weights: ImageNet weights
    need a download these machines cannot make."""
    from dream_engine import DreamEngine

    return DreamEngine(weights="random", precision="float32")

"""Shared test set-up: quiet TensorFlow, one thread pool size, and access to ../shared data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED = pathlib.Path(os.environ.get("ITNAS_SHARED_DIR", pathlib.Path(__file__).parents[2] / "shared"))
# CI sets this so that a missing ../shared fails the run instead of skipping tests.
REQUIRE_SHARED = os.environ.get("ITNAS_REQUIRE_SHARED_DATA") == "1"


@pytest.fixture
def shared_data():
    """Returns a function mapping a path under shared/data to a Path, skipping when it is absent."""

    def get(relative):
        path = SHARED / "data" / relative
        if not path.exists():
            message = f"{path} is absent (the ../shared folder exists only in this project's workspace)"
            if REQUIRE_SHARED:
                pytest.fail(message + "; ITNAS_REQUIRE_SHARED_DATA=1 requires it.")
            pytest.skip(message)
        return path

    return get

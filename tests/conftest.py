import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "keras",
    deadline=None,
    max_examples=12,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
settings.load_profile("keras")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture(scope="session")
def saved_artefacts(tmp_path_factory):
    """``(folder, {kind: path})``: every kind of file the library saves (tests/joint_artefacts.py), built
    once per session. With ``KERAS_UNETPP_JOINT_ARTEFACTS`` set, the files another backend saved there."""
    from pathlib import Path

    from joint_artefacts import KINDS, write_artefacts

    given = os.environ.get("KERAS_UNETPP_JOINT_ARTEFACTS")
    if given:
        return Path(given), {kind: Path(given) / f"{kind}.keras" for kind in KINDS}
    return write_artefacts(tmp_path_factory.mktemp("artefacts"))

collect_ignore_glob = ["data/*"]  # fixture writers, run with the release they record

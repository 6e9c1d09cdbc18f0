"""The package starts the backend without its start-up lines (cuInit etc.), for the CLI and every import."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only


def _stderr_of(code, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                                     "KERAS_UNETPP_VERBOSE_STARTUP")}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="TensorFlow's lines")
def test_import_and_cli_print_no_backend_start_up_lines():
    verbose = _stderr_of("import keras_unetpp", KERAS_UNETPP_VERBOSE_STARTUP="1")
    plain = _stderr_of("import keras_unetpp")
    cli = _stderr_of("import sys; sys.argv = ['keras-unetpp', '--help']\n"
                     "from keras_unetpp.cli import main\n"
                     "try:\n    main()\nexcept SystemExit:\n    pass")
    # TensorFlow does print at start-up here (the capture is shown on request) ...
    assert verbose.strip(), "expected TensorFlow start-up lines with KERAS_UNETPP_VERBOSE_STARTUP=1"
    # ... and none of it reaches the console otherwise
    assert plain == "" and cli == ""


def test_keras_imported_first_is_left_alone():
    """A process that started Keras itself keeps its own output; the package does not redirect anything."""
    out = _stderr_of("import sys, keras\nfrom keras_unetpp._startup import start_backend_quietly\n"
                     "start_backend_quietly()\nprint('still here', file=sys.stderr)")
    assert out.rstrip().endswith("still here")

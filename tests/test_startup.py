"""``import keras_unetpp`` does no work beyond imports; the command and the examples
start the backend without its start-up lines (cuInit etc.) themselves."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

ON_TENSORFLOW = os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                                     "KERAS_UNETPP_VERBOSE_STARTUP")}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_import_redirects_nothing_and_discovers_no_devices():
    """The package import leaves descriptor 2 and the backend's device list alone."""
    probe = ("import os\n"
             "before = os.fstat(2).st_ino\n"
             "import keras_unetpp\n"
             "print(os.fstat(2).st_ino == before)\n")
    if ON_TENSORFLOW:  # TensorFlow lists its devices lazily, at the first use (or list_physical_devices)
        probe += ("from tensorflow.python.eager import context\n"
                  "print(context.context()._physical_devices is None)\n")
    else:
        probe += "print(True)\n"
    lines = _run(probe).stdout.split()
    assert lines[-2:] == ["True", "True"], lines


@pytest.mark.skipif(not ON_TENSORFLOW, reason="TensorFlow's lines")
def test_command_prints_no_backend_start_up_lines():
    verbose = _run("import sys; sys.argv = ['keras-unetpp', '--help']\n"
                   "from keras_unetpp_cli import main\n"
                   "try:\n    main()\nexcept SystemExit:\n    pass", KERAS_UNETPP_VERBOSE_STARTUP="1").stderr
    cli = _run("import sys; sys.argv = ['keras-unetpp', '--help']\n"
               "from keras_unetpp_cli import main\n"
               "try:\n    main()\nexcept SystemExit:\n    pass").stderr
    plain_import = _run("import keras_unetpp").stderr
    # TensorFlow does print at start-up here (shown on request, and by a plain import, which hides nothing) ...
    assert verbose.strip(), "expected TensorFlow start-up lines with KERAS_UNETPP_VERBOSE_STARTUP=1"
    assert plain_import.strip(), "a plain import redirects nothing, so TensorFlow's own lines appear"
    # ... and none of it reaches the console of the command
    assert cli == ""


def test_keras_imported_first_is_left_alone():
    """A process that started Keras itself keeps its own output; the launcher redirects nothing."""
    out = _run("import sys, keras\nfrom keras_unetpp_cli import start_backend_quietly\n"
               "start_backend_quietly()\nprint('still here', file=sys.stderr)").stderr
    assert out.rstrip().endswith("still here")

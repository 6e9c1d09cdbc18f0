"""``python -m keras_unetpp``: the ``keras-unetpp`` command line."""

import sys

from keras_unetpp_cli import main

sys.exit(main())

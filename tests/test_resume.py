"""Nothing lost on interruption: a run stopped after an epoch and resumed with
``keras.callbacks.BackupAndRestore`` ends with the weights of an uninterrupted
run; the same seed gives the same weights twice."""

import keras
import numpy as np
import pytest

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus
from keras_unetpp.datasets import make_shapes

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

EPOCHS = 4


class Interrupt(keras.callbacks.Callback):
    """Stops the process-like run at the end of ``epoch`` (after the backup)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def train(x, y, epochs=EPOCHS, callbacks=()):
    keras.utils.set_random_seed(0)
    model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=True)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, epochs * 2)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=FocalDiceLoss(), metrics=[BinaryIoU()])
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=list(callbacks))
    return model


@pytest.fixture(scope="module")
def data():
    return make_shapes(8, size=32, seed=1)


@pytest.fixture(scope="module")
def uninterrupted(data):
    return train(*data)


def test_resumed_run_ends_with_the_uninterrupted_weights(data, uninterrupted, tmp_path):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        train(*data, callbacks=[backup, Interrupt(epoch=1)])
    assert (tmp_path / "backup").exists()
    resumed = train(*data, callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    assert int(resumed.optimizer.iterations) == int(uninterrupted.optimizer.iterations) == EPOCHS * 2
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "backup").exists()  # deleted once training completed


def test_same_seed_gives_the_same_weights_twice(data, uninterrupted):
    again = train(*data)
    for a, b in zip(uninterrupted.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_interrupted_run_without_backup_differs(data, uninterrupted):
    """The resume check can fail: the weights after fewer epochs are not the final ones."""
    shorter = train(*data, epochs=EPOCHS - 2)
    assert any(not np.allclose(a, b, atol=1e-4) for a, b in zip(uninterrupted.get_weights(), shorter.get_weights()))


def test_an_interrupted_run_resumes_only_with_its_own_arguments(tmp_path, capsys):
    """The recipe keeps its backup in the run's folder: the same arguments resume it (and say so),
    other arguments stop with the differences instead of resuming a run they are not."""
    from keras_unetpp.training import training_callbacks

    config = {"epochs": 30, "seed": 0, "filters": [8, 16]}
    training_callbacks(tmp_path, config)
    (tmp_path / "backup" / "latest.weights.h5").write_bytes(b"stand-in for a backup")  # as if interrupted
    training_callbacks(tmp_path, config)
    assert "resuming the interrupted run" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"other arguments \(epochs: 30 -> 15\)"):
        training_callbacks(tmp_path, {**config, "epochs": 15})

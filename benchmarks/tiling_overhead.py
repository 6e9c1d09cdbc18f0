"""Tiled prediction of a large scene: overhead of tiling and blending, and a
naive one-tile-per-call loop, in one run.

    python benchmarks/tiling_overhead.py [--height 3072 --width 4608]

Times, on the same scene and model:
  * ``predict_tiled`` (default blending, 25% overlap),
  * the model alone on the same number of windows, in the same batches
    (so the difference is the tiling + blending overhead),
  * a naive loop predicting non-overlapping tiles one ``predict`` call each,
and the peak of numpy allocations during ``predict_tiled`` (tracemalloc). Prints one
JSON object and writes it to benchmarks/results/tiling_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import keras
import numpy as np

from keras_unetpp import UNetPlusPlus, predict_tiled
from keras_unetpp.inference import count_windows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=3072)
    parser.add_argument("--width", type=int, default=4608)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tiling_overhead.json")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    scene = rng.random((args.height, args.width, 3), dtype=np.float32)
    model = UNetPlusPlus((None, None, 3), filters=args.filters)
    windows = count_windows(args.height, args.width, args.tile, 0.25)
    batch = rng.random((args.batch_size, args.tile, args.tile, 3), dtype=np.float32)
    model.predict_on_batch(batch)  # trace

    start = time.perf_counter()
    for _ in range(-(-windows // args.batch_size)):
        model.predict_on_batch(batch)
    model_only = time.perf_counter() - start

    tracemalloc.start()
    start = time.perf_counter()
    predict_tiled(model, scene, tile_size=args.tile, overlap=0.25, batch_size=args.batch_size, progress=False)
    tiled = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    start = time.perf_counter()
    for y in range(0, args.height - args.tile + 1, args.tile):
        for x in range(0, args.width - args.tile + 1, args.tile):
            model.predict(scene[None, y:y + args.tile, x:x + args.tile], verbose=0)
    naive = time.perf_counter() - start
    naive_tiles = (args.height // args.tile) * (args.width // args.tile)

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {keras.backend.backend()} backend",
        "scene": f"{args.height}x{args.width}x3",
        "model": f"UNetPlusPlus filters {args.filters}",
        "windows_25pct_overlap": windows,
        "predict_tiled_s": round(tiled, 2),
        "model_alone_same_windows_s": round(model_only, 2),
        "tiling_overhead_ratio": round(tiled / model_only, 3),
        "tiled_throughput_vs_model_alone": round(model_only / tiled, 3),
        "naive_tiles_no_overlap": naive_tiles,
        "naive_one_tile_per_call_s": round(naive, 2),
        "naive_s_per_tile_vs_predict_tiled_s_per_window": round((naive / naive_tiles) / (tiled / windows), 2),
        "numpy_peak_MB_during_predict_tiled": round(peak / 2**20, 1),
        "scene_MB_float32": round(scene.nbytes / 2**20, 1),
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Peak memory of window-by-window GeoTIFF prediction against scene size, with and without polygons.

For each scene edge, writes a uint8 RGB GeoTIFF block by block (the scene is
never whole in memory), then, in a fresh process, segments it with
``keras-unetpp predict`` (windows of ``--tile``, rows written as they finish),
once alone and once with ``--polygons`` (regions joined band by band and
streamed to the file), and reports the process's peak resident memory and time.
Bounded memory means the peak stays flat while the scene grows, with
polygons as without.

Two scenes:

- ``checkerboard`` (default): squares of 16 px, 1/4 of them red, under a 1x1
  model that thresholds red, so the mask is exact and holds (size / 32)**2
  footprints (65,536 at 8192 px): the polygons' worst honest case.
- ``random``: uint8 noise under a small random-weights UNet++ with its
  preprocessing (a speckled mask).

    python benchmarks/geotiff_memory.py --sizes 2048 4096 8192 16384
    python benchmarks/geotiff_memory.py --scene random --sizes 2048 4096

Writes ``benchmarks/results/geotiff_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import json, resource, sys, time
import keras
import numpy as np
from keras_unetpp import UNetPlusPlus, with_preprocessing
from keras_unetpp.cli import main

source, tile, scene, polygons = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
keras.utils.set_random_seed(0)
if scene == "random":
    model = with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=False),
                               channels=3, median_kernel=5)
else:   # probability > 0.5 exactly where red > 128
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([0.2, 0, 0], "float32").reshape(1, 1, 3, 1), np.array([-0.2 * 128.5], "float32")])
model.save(source + ".keras")
model.predict(keras.ops.zeros((1, tile, tile, 3)), verbose=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
argv = ["predict", source + ".keras", source, "--out", source + ".out", "--tile", str(tile), "--overwrite"]
main(argv + (["--polygons", polygons] if polygons else []))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rss_after_model_mb": round(before), "peak_rss_mb": round(peak),
                  "extra_peak_mb": round(peak - before), "seconds": round(seconds, 1)}))
"""


def write_scene(path: Path, size: int, scene: str = "checkerboard", block: int = 1024) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        for row in range(0, size, block):
            for col in range(0, size, block):
                rows, cols = min(block, size - row), min(block, size - col)
                data = rng.integers(0, 100, (3, rows, cols), dtype=np.uint8)
                if scene == "checkerboard":   # a red 16 px square in every 32 x 32 cell
                    r, c = np.mgrid[row:row + rows, col:col + cols]
                    data[0][(r % 32 < 16) & (c % 32 < 16)] = 250
                elif scene == "random":
                    data = rng.integers(0, 255, (3, rows, cols), dtype=np.uint8)
                dst.write(data, window=Window(col, row, cols, rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--scene", choices=["checkerboard", "random"], default="checkerboard")
    parser.add_argument("--polygon-format", default=".gpkg", choices=[".gpkg", ".geojson", ".fgb"])
    parser.add_argument("--out", type=Path, default=RESULTS / "geotiff_memory.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            scene = Path(tmp) / f"scene_{size}.tif"
            write_scene(scene, size, args.scene)
            row = {"size": size, "scene": args.scene, "scene_mb_uint8": round(size * size * 3 / 2**20)}
            for label, polygons in (("alone", ""), ("polygons", str(scene) + ".shapes" + args.polygon_format)):
                result = subprocess.run([sys.executable, "-c", CHILD, str(scene), str(args.tile), args.scene, polygons],
                                        capture_output=True, text=True,
                                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
                if result.returncode:
                    raise SystemExit(result.stderr[-3000:])
                row[label] = json.loads(result.stdout.splitlines()[-1])
                if polygons:
                    import pyogrio

                    row[label]["features"] = pyogrio.read_info(polygons)["features"]
                    row[label]["file_mb"] = round(Path(polygons).stat().st_size / 2**20, 1)
            row["peak_ratio"] = round(row["polygons"]["peak_rss_mb"] / row["alone"]["peak_rss_mb"], 3)
            rows.append(row)
            print(row, flush=True)
            scene.unlink()
    RESULTS.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu_cores": os.cpu_count(),
                                    "tile": args.tile, "polygon_format": args.polygon_format, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

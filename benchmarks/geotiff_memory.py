"""Peak memory of window-by-window GeoTIFF prediction against scene size.

For each scene edge, writes a random uint8 RGB GeoTIFF block by block (the
scene is never whole in memory), then, in a fresh process, segments it with
``keras_unetpp.geo.predict_geotiff`` (a small UNet++ with its preprocessing,
windows of ``--tile``, rows written as they finish) and reports the process's peak resident memory above
what it held once the model was loaded. Bounded memory means the extra peak
stays flat while the scene grows.

    python benchmarks/geotiff_memory.py --sizes 2048 4096 8192
    python benchmarks/geotiff_memory.py --sizes 20000        # the issue's 20,000 x 20,000 (long on a CPU)

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
from keras_unetpp import UNetPlusPlus
from keras_unetpp.geo import predict_geotiff
from keras_unetpp import with_preprocessing

source, tile = sys.argv[1], int(sys.argv[2])
keras.utils.set_random_seed(0)
model = with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=False),
                           channels=3, median_kernel=5)
model.predict(keras.ops.zeros((1, tile, tile, 3)), verbose=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
predict_geotiff(model, source, source + ".mask.tif", tile_size=tile, progress=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rss_after_model_mb": round(before), "peak_rss_mb": round(peak),
                  "extra_peak_mb": round(peak - before), "seconds": round(seconds, 1)}))
"""


def write_scene(path: Path, size: int, block: int = 1024) -> None:
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
                dst.write(rng.integers(0, 255, (3, rows, cols), dtype=np.uint8), window=Window(col, row, cols, rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS / "geotiff_memory.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            scene = Path(tmp) / f"scene_{size}.tif"
            write_scene(scene, size)
            result = subprocess.run([sys.executable, "-c", CHILD, str(scene), str(args.tile)],
                                    capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            measured = json.loads(result.stdout.splitlines()[-1])
            row = {"size": size, "scene_mb_uint8": round(size * size * 3 / 2**20), **measured}
            rows.append(row)
            print(row, flush=True)
            scene.unlink()
    RESULTS.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu_cores": os.cpu_count(),
                                    "tile": args.tile, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

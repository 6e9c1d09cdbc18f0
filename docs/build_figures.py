"""Builds the pictures of the docs site from real runs of the library.

    python docs/build_figures.py [--data ../shared/data] [--aerial-model outputs/aerial/model.keras]

Writes small PNGs to docs/images/:
  augmentation.png   every layer's effect on an image and its mask (a real aerial crop when the data
                     is there, else the synthetic set)
  tiling.png         a scene predicted with naive non-overlapping tiles vs predict_tiled (seams)
  lung_worst_cases.png the validation films the lung default scores worst
  lung_opacity.png     a chest film under RandomOpacity (the lung example's opacity arm)
  map_footprints.jpg the command's GeoJSON footprints over a GeoTIFF scene, in map coordinates
  and copies of the example figures found under outputs/ (quickstart, lung_compare, aerial, aerial_s0,
  aerial_classes, trees; downscaled).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import keras
import numpy as np

from keras_unetpp import UNetPlusPlus, predict_tiled
from keras_unetpp.datasets import load_dubai, load_folder_pairs, make_shapes, to_float
from keras_unetpp.layers import (
    MedianBlur,
    RandomBrightness,
    RandomContrast,
    RandomDihedral,
    RandomFlip,
    RandomGaussianNoise,
    RandomOpacity,
    RandomRotation,
)
from keras_unetpp.visualization import overlay, panel_grid

IMAGES = Path(__file__).parent / "images"


def save_small(name: str, rgb: np.ndarray, scale: float = 1.0) -> None:
    """Downscales, keeps 4 bits per channel (photos compress ~3x better) and writes PNG level 9."""
    if scale != 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rgb = (rgb & 0xF0) | 0x08
    cv2.imwrite(str(IMAGES / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def sample_pair(data: Path | None):
    size = 144
    if data is not None and (data / "aerial-dubai").is_dir():
        s = load_dubai(data / "aerial-dubai", "building", tiles=[1])[0]
        # the crop whose building fraction is closest to 35%
        best = min(((y, x) for y in range(0, s.mask.shape[0] - size, 32) for x in range(0, s.mask.shape[1] - size, 32)),
                   key=lambda p: abs(s.mask[p[0]:p[0] + size, p[1]:p[1] + size].mean() - 0.35))
        y, x = best
        return to_float(s.image[y:y + size, x:x + size]), s.mask[y:y + size, x:x + size].astype(np.float32)
    x, y = make_shapes(1, size=size, seed=3)
    return x[0], y[0]


def augmentation_figure(data):
    """One column per layer (original first), rows image / mask / overlay; labels
    above the columns at a readable size (1280 px wide, no downscaling)."""
    image, mask = sample_pair(data)
    layers = [
        ("MedianBlur(5)", MedianBlur(5)),
        ("RandomDihedral", RandomDihedral(seed=4)),
        ("RandomFlip", RandomFlip(seed=1)),
        ("RandomRotation(30)", RandomRotation(30, seed=2)),
        ("RandomBrightness(0.2)", RandomBrightness(0.2, seed=3)),
        ("RandomContrast(0.5)", RandomContrast(0.5, seed=3)),
        ("GaussianNoise(0.08)", RandomGaussianNoise(0.08, seed=3)),
    ]
    columns = [(image, mask, overlay(image, mask))]
    for name, layer in layers:
        out_image, out_mask = layer(image[None], mask[None])
        out_image = keras.ops.convert_to_numpy(out_image)[0]
        out_mask = keras.ops.convert_to_numpy(out_mask)[0]
        columns.append((out_image, out_mask, overlay(out_image, out_mask)))
        print("augmentation:", name)
    rows = [tuple(column[r] for column in columns) for r in range(3)]
    grid = panel_grid(rows, ["original"] + [n for n, _ in layers])
    labels = np.full((grid.shape[0], 90, 3), 255, np.uint8)
    row_height = grid.shape[0] // 3
    for k, name in enumerate(["image", "mask", "overlay"]):
        cv2.putText(labels, name, (6, k * row_height + row_height // 2 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (0, 0, 0), 1, cv2.LINE_AA)
    figure = np.concatenate([labels, grid], axis=1)
    save_small("augmentation.png", figure, scale=min(1.0, 1280 / figure.shape[1]))


def naive_tiles(model, image, tile):
    """The aerial project's way: non-overlapping tiles, hard pasted."""
    h, w = image.shape[:2]
    out = np.zeros((h, w, 1), np.float32)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0 = min(y, h - tile), min(x, w - tile)
            out[y0:y0 + tile, x0:x0 + tile] = model.predict(image[None, y0:y0 + tile, x0:x0 + tile], verbose=0)[0]
    return out


def tiling_figure(data, model_path: Path | None):
    if model_path is not None and model_path.exists() and data is not None and (data / "aerial-dubai").is_dir():
        model = keras.models.load_model(model_path)  # carries its preprocessing: raw uint8 pixels in
        s = load_dubai(data / "aerial-dubai", "building", tiles=[7])[0]
        image, tile = s.image[:1024, :1536], 512
        print("tiling: trained aerial model")
    else:  # a quickly trained synthetic model
        keras.utils.set_random_seed(0)
        x, y = make_shapes(256, size=64, seed=0)
        model = UNetPlusPlus((None, None, 3), filters=(8, 16, 32))
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
        model.fit(x, y, epochs=4, batch_size=16, verbose=0)
        scene_x, _ = make_shapes(1, size=256, max_shapes=12, seed=9)
        image, tile = scene_x[0], 64
        print("tiling: synthetic model")
    naive = naive_tiles(model, image, tile)
    blended = predict_tiled(model, image, tile_size=tile, overlap=0.5, progress=False)
    diff = np.abs(naive - blended)
    diff = diff / max(float(diff.max()), 1e-6)
    top = panel_grid([(image, naive)], ["scene", "naive tiles (seams)"])
    bottom = panel_grid([(blended, diff)], ["predict_tiled (overlap-tile)", "|difference|"])
    grid = np.concatenate([top, bottom], axis=0)  # 2 x 2: each panel half the page wide
    save_small("tiling.png", grid, scale=min(1.0, 1280 / grid.shape[1]))


def copy_outputs(outputs: Path):
    """Downscaled copies of the figures the examples wrote."""
    wanted = {
        "quickstart/predictions.png": "quickstart_predictions.png",
        "lung_compare/all/seed0/predictions.png": "lung_predictions.png",
        "lung_compare/all/seed0/curves_iou.png": "lung_curves_iou.png",
        "lung_compare/none/seed0/curves_iou.png": "lung_curves_iou_no_aug.png",
        "lung_compare/robustness.png": "lung_robustness.png",
        "lung_compare/arms.png": "lung_arms.png",
        "aerial_s0/Tile_7_image_part_003_error_map.png": "aerial_fg_error_map_003.png",
        "aerial_s0/curves_iou.png": "aerial_fg_curves_iou.png",
        "aerial_classes/Tile_7_image_part_003_classes.png": "aerial_classes_003.png",
        "aerial_classes/curves_mean_iou.png": "aerial_classes_curves.png",
        "aerial/curves_iou.png": "aerial_curves_iou.png",
        "aerial/curves_lr.png": "aerial_curves_lr.png",
        "trees/curves_iou.png": "trees_curves_iou.png",
    }
    for run in ("aerial", "trees"):  # buildings and the trees variant: the first validation image
        for kind in ("error_map.png", "overlay.png"):
            for f in sorted(outputs.glob(f"{run}/*_{kind}"))[:1]:
                wanted[str(f.relative_to(outputs))] = f"{run}_{kind}"
    for src, dst in wanted.items():
        path = outputs / src
        if path.exists():
            image = cv2.imread(str(path))[..., ::-1]
            if "predictions" in src:
                image = image[: image.shape[0] // 2]  # the first three rows
            limit = 360 if "overlay" in dst else 1280 if "classes_0" in dst else 560  # photos compress worst
            save_small(dst, np.ascontiguousarray(image), scale=min(1.0, limit / max(image.shape[:2])))
            print("copied", src)


def label_style_figure(data, outputs: Path, y0: int = 750, x0: int = 850, size: int = 220):
    """Image 003 of Tile 7 at 3x: true building outlines (red) and the seed-0
    default model's (cyan), to show the masks' drawing style."""
    prediction = outputs / "aerial_s0" / "Tile_7_image_part_003_prediction.png"
    if data is None or not (data / "aerial-dubai").is_dir() or not prediction.exists():
        return
    sample = next(s for s in load_dubai(data / "aerial-dubai", "building", tiles=[7]) if s.name.endswith("003"))
    window = np.s_[y0:y0 + size, x0:x0 + size]
    zoom = lambda a: cv2.resize(a, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)  # noqa: E731
    rgb = np.ascontiguousarray(zoom(sample.image[window]))
    predicted = cv2.imread(str(prediction), cv2.IMREAD_GRAYSCALE)[window] > 127
    for mask, colour in ((sample.mask[window] > 0, (255, 0, 0)), (predicted, (0, 255, 255))):
        contours, _ = cv2.findContours(zoom(mask.astype(np.uint8)), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, colour, 2)
    save_small("aerial_label_style_003.png", rgb, scale=560 / rgb.shape[0])
    print("drew aerial_label_style_003.png")


def training_fit_figure(data, outputs: Path, tile: int = 2, image: str = "image_part_002"):
    """A training image (Tile 2) next to the error map of the model trained on it
    (outputs/aerial_l5_s0): how far the CPU-hour model is from fitting its own data."""
    from keras_unetpp.visualization import error_map

    model_path = outputs / "aerial_l5_s0" / "model.keras"
    if data is None or not (data / "aerial-dubai").is_dir() or not model_path.exists():
        return
    sample = next(s for s in load_dubai(data / "aerial-dubai", "building", tiles=[tile]) if s.name.endswith(image))
    model = keras.saving.load_model(model_path)
    prob = predict_tiled(model, sample.image, tile_size=512, progress=False)
    side = np.concatenate([sample.image, np.full((sample.image.shape[0], 8, 3), 255, np.uint8),
                           error_map(sample.mask, prob)], axis=1)
    save_small(f"aerial_training_fit_tile{tile}.png", side, scale=1100 / side.shape[1])
    print(f"drew aerial_training_fit_tile{tile}.png")


def lung_ablation_figure(outputs: Path):
    """Dice per shift condition for every augmentation arm at 600 steps: ``none`` and
    ``all`` from outputs/lung_2x, the single transforms from outputs/lung_ablation."""
    import json

    from keras_unetpp.visualization import comparison_figure, save_figure

    runs = {}
    for name in ("lung_2x", "lung_ablation"):
        path = outputs / name / "metrics.json"
        if not path.exists():
            return
        runs.update(json.loads(path.read_text())["runs"])
    arms = [arm for arm in ("none", "flip", "rotation", "intensity", "noise", "all") if arm in runs]
    conditions = list(runs[arms[0]][0]["shifts"])
    values = {arm: [[float(np.mean(list(r["shifts"][c]["dice"].values()))) for r in runs[arm]] for c in conditions]
              for arm in arms}
    fig = comparison_figure(conditions, values, ylabel="mean Dice per case",
                            title="lungs, 600 steps per model: each augmentation arm, films as they are and shifted",
                            size=(11.0, 4.5))
    fig.axes[0].set_ylim(0.4, 1.0)
    save_figure(fig, IMAGES / "lung_ablation.png")
    print("drew lung_ablation.png")


def lung_worst_cases_figure(data, run: Path, count: int = 3):
    """The validation films the lung default scores worst: film, true mask, prediction, with each
    film's Dice from the run's metrics.json. ``run`` holds metrics.json and model.keras of
    ``python examples/lung_xray.py`` (or the ``all/seed0`` arm of ``--compare-augmentation``)."""
    import json

    from keras_unetpp.datasets import load_folder_pairs
    from keras_unetpp.evaluation import segmentation_report
    from keras_unetpp.inference import MIRROR_TTA, predict_augmented

    model_path = run / "model.keras"
    metrics = next((m for m in (run / "metrics.json", run.parent.parent / "metrics.json") if m.exists()), run)
    if data is None or not (data / "lung-xray").is_dir() or not model_path.exists():
        print("lung worst cases: skipped (needs the lung data and a run of the lung example)")
        return
    found = json.loads(metrics.read_text()) if metrics.is_file() else {}
    per_image = found.get("runs", {}).get("all", [{}])[0].get("per_image") or found.get("per_image")
    worst = sorted(per_image, key=lambda name: per_image[name]["dice"])[:count]
    films = {s.name: s for s in load_folder_pairs(data / "lung-xray", channels=1)}
    model = keras.models.load_model(model_path)  # carries its preprocessing: the film as it is
    rows = []
    for name in worst:
        film = films[name]
        prob = predict_augmented(model, film.image[None], tta=MIRROR_TTA if found.get("tta") else False)[0]
        dice = segmentation_report(film.mask, prob).dice
        small = lambda a: cv2.resize(np.asarray(a, np.float32), (256, 256), interpolation=cv2.INTER_AREA)  # noqa: E731
        panels = (small(film.image[..., 0]) / 255.0, small(film.mask[..., 0]),
                  overlay(cv2.resize(film.image, (256, 256))[..., None].repeat(3, -1), small(prob[..., 0])))
        rows.append(panel_grid([panels], [name[:30], "true mask", f"prediction: Dice {dice:.3f}"]))
        print(f"lung worst cases: {name} Dice {dice:.3f} (metrics.json: {per_image[name]['dice']:.3f})")
    save_small("lung_worst_cases.png", np.concatenate(rows, axis=0))


def opacity_figure(data, film: str = "nejmoa2001191_f4", draws: int = 4):
    """A clear chest film and ``draws`` draws of ``RandomOpacity(0.6)`` (each applied), the lung
    mask's outline in red: what the opacity arm of the lung example trains on."""
    if data is None or not (data / "lung-xray").is_dir():
        print("opacity: skipped (needs the lung data)")
        return
    sample = next(s for s in load_folder_pairs(data / "lung-xray", channels=1) if s.name == film)
    image = cv2.resize(to_float(sample.image), (256, 256), interpolation=cv2.INTER_AREA)[None, ..., None]
    mask = (cv2.resize(sample.mask.astype(np.float32), (256, 256), interpolation=cv2.INTER_AREA) > 0.5)
    mask = mask.astype(np.float32)[None, ..., None]
    layer = RandomOpacity(0.6, probability=1.0, seed=7)
    images = [image[0]] + [keras.ops.convert_to_numpy(layer(image, mask, training=True)[0])[0] for _ in range(draws)]
    outline = cv2.morphologyEx(mask[0, ..., 0].astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    panels = []
    for x in images:
        rgb = np.repeat((np.clip(x, 0, 1) * 255).astype(np.uint8), 3, axis=-1)
        rgb[outline > 0] = (255, 40, 40)
        panels.append(rgb)
    grid = panel_grid([panels], ["film"] + [f"RandomOpacity(0.6), draw {k + 1}" for k in range(draws)])
    save_small("lung_opacity.png", grid)
    print("drew lung_opacity.png")


def map_figure(data, model_path: Path | None, image_name: str = "image_part_003"):
    """The command's GeoTIFF path end to end: a Tile 7 image written as a GeoTIFF (an illustrative
    UTM 40N georeference at 0.5 m per pixel: the Dubai images carry none), ``keras-unetpp predict
    --polygons`` on it, and the GeoJSON drawn over the scene in map coordinates, as QGIS shows them."""
    if model_path is None or not model_path.exists() or data is None or not (data / "aerial-dubai").is_dir():
        print("map: skipped (needs the aerial data and a trained aerial model)")
        return
    import json
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.transform import from_origin

    from keras_unetpp.cli import main as command

    image = cv2.imread(str(data / "aerial-dubai" / "Tile 7" / "images" / f"{image_name}.jpg"))[..., ::-1]
    folder = Path(tempfile.mkdtemp())
    scene, footprints = folder / "scene.tif", folder / "footprints.geojson"
    west, north, pixel = 334_000.0, 2_790_000.0, 0.5
    with rasterio.open(scene, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=3,
                       dtype="uint8", crs="EPSG:32640", transform=from_origin(west, north, pixel, pixel)) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    assert command(["predict", str(model_path), str(scene), "--out", str(folder / "masks"), "--polygons",
                    str(footprints), "--min-area", "50", "--simplify", "0.5"]) == 0
    features = json.loads(footprints.read_text())["features"]
    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(9, 9 * height / width + 0.6), dpi=110)
    ax.imshow(image, extent=(west, west + width * pixel, north - height * pixel, north))
    for feature in features:
        geometry = feature["geometry"]
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        for rings in polygons:
            for ring in rings:
                xy = np.asarray(ring)
                ax.plot(xy[:, 0], xy[:, 1], color="#ffd400", linewidth=0.9)
    ax.set_xlabel("easting (m, EPSG:32640)")
    ax.set_ylabel("northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_title(f"footprints.geojson ({len(features)} polygons) over scene.tif")
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    cv2.imwrite(str(IMAGES / "map_footprints.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"map: {len(features)} polygons")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=os.environ.get("KERAS_UNETPP_DATA"))
    parser.add_argument("--aerial-model", type=Path, default=Path("outputs/aerial/model.keras"))
    parser.add_argument("--outputs", type=Path, default=Path("outputs"))
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else None
    augmentation_figure(data)
    tiling_figure(data, args.aerial_model)
    copy_outputs(args.outputs)
    label_style_figure(data, args.outputs)
    training_fit_figure(data, args.outputs)
    lung_ablation_figure(args.outputs)
    map_figure(data, args.aerial_model)
    lung_worst_cases_figure(data, args.outputs / "lung_compare" / "all" / "seed0")
    opacity_figure(data)


if __name__ == "__main__":
    main()

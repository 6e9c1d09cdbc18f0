"""The ``keras-unetpp`` command (also ``python -m keras_unetpp``).

    keras-unetpp train --images DIR --masks DIR --out RUN [--time-budget 30m --val-images DIR --val-masks DIR
                       --classes N --encoder NAME --kind overhead|medical|photo --dry-run]
    keras-unetpp predict MODEL.keras INPUT... --out OUT [--tile 256 --overlap 0.25 --tta [--tta-set SET]
                         --threshold 0.5 --probabilities --polygons SHAPES.geojson --min-area A]
    keras-unetpp evaluate MODEL.keras --images DIR --masks DIR [--out OUT]
    keras-unetpp export MODEL.keras --format {tf_saved_model,onnx,litert} [--out PATH --input-size H W]

``predict``: INPUT is an image file or a folder of them. JPEG/PNG in gives a
PNG mask (0/255) out; a DICOM film (``pip install "keras-unetpp[medical]"``)
gives a PNG mask at the film's size and a JSON beside it with the film's
study, series and instance UIDs; GeoTIFF in gives a GeoTIFF mask with the input's CRS,
transform and size, segmented window by window (bounded memory; needs
``pip install "keras-unetpp[geo]"``). 8-bit values are mapped onto what the
model takes (0..255 for a model saved with its preprocessing, [0, 1] for a
bare UNet++); 16-bit images and rasters need ``--input-range LOW HIGH`` or
``--input-range percentile`` (``keras_unetpp.values``).

``evaluate``: predicts every image of ``--images`` whole (tiled), compares it
with the mask of the same stem in ``--masks`` (0/1 or 0/255 PNG masks, or the
pixels of --mask-color; every image needs one, masks of other images are left
out, with a note), prints the segmentation report and writes error maps and
``metrics.json``.

``train``: fingerprints the labelled folders, prints and writes a plan
(``RUN/plan.json``: every choice with its rule), fits the number of steps to
``--time-budget`` by timing real steps, trains (a backup every epoch: the same
command resumes an interrupted run), keeps the best weights by validation IoU,
and writes ``model.keras`` (ready for ``predict``), ``metrics.json``, curves,
error maps and ``report.md`` (``keras_unetpp.training.train``).

``export``: SavedModel, ONNX or LiteRT through ``keras.Model.export``
(``keras_unetpp.export.export_model``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from keras_unetpp.layers.symmetries import NAMED_SYMMETRIES

PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DICOM_SUFFIXES = (".dcm",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-unetpp", description=_plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def tiling_options(command):
        command.add_argument("--tile", type=_at_least(1), default=256, help="window edge in pixels (default 256)")
        command.add_argument("--overlap", type=_overlap, default=0.25, help="window overlap in [0, 1) (default 0.25)")
        command.add_argument("--batch-size", type=_at_least(1), default=8, help="windows per model call (default 8)")
        command.add_argument("--tta", action="store_true",
                             help="test-time augmentation over the symmetries the model was saved with "
                                  "(with_preprocessing(symmetries=...): the lung example's models mirror "
                                  "left-right), else the 8 of the square; 8x slower at most")
        command.add_argument("--tta-set", type=_symmetries_name, default=None, metavar="SET",
                             help="test-time augmentation over a named set instead (implies --tta): "
                                  f"{', '.join(sorted(NAMED_SYMMETRIES))}; for models saved without one")
        command.add_argument("--threshold", type=_probability, default=0.5,
                             help="foreground threshold in (0, 1) (default 0.5)")
        command.add_argument("--input-range", nargs="+", default=None, metavar="LOW HIGH | percentile",
                             help="map the image values LOW..HIGH (or each band's 2nd-98th percentile) onto the "
                                  "values the model takes; needed for 16-bit and other non-8-bit data")

    train = commands.add_parser("train", help="train a model on folders of labelled images, by a plan")
    train.add_argument("--images", type=Path, default=None, help="folder of training images")
    train.add_argument("--masks", type=Path, default=None,
                       help="folder of masks with the images' stems: 0/1 or 0/255 PNG (or class indices with "
                            "--classes; 255 = ignore)")
    train.add_argument("--scenes", type=Path, default=None,
                       help="instead of --images/--masks: a folder of GeoTIFF scenes (or one), with --labels")
    train.add_argument("--labels", type=Path, default=None,
                       help="vector footprints of the foreground (.geojson, .gpkg, .fgb), rasterised on each scene's "
                            "grid; chips holding nodata are left out")
    train.add_argument("--label-field", default=None, metavar="NAME",
                       help="with --labels: the footprints' attribute that gives each one's class (numbers 1..K, "
                            "or names: one class per distinct name); default: one foreground class")
    train.add_argument("--out", type=Path, required=True, help="the run's folder (resumes a run interrupted there)")
    train.add_argument("--val-images", type=Path, default=None, help="folder of validation images (default: a split)")
    train.add_argument("--val-masks", type=Path, default=None, help="their masks")
    train.add_argument("--val-fraction", type=_overlap, default=0.2,
                       help="share of file-name groups held out when no validation folders are given (default 0.2)")
    train.add_argument("--group-separator", default="_",
                       help="files are grouped for the split by the name's prefix before this (default _: "
                            "patient_001.png and patient_002.png stay together)")
    train.add_argument("--time-budget", default="30m", help="the run's wall time, e.g. 30m, 1.5h (default 30m)")
    train.add_argument("--classes", type=_at_least(2), default=None,
                       help="class-index masks with N classes (default: binary masks)")
    train.add_argument("--encoder", default=None,
                       help="override the planned encoder: efficientnet_lite0/1/2, resnet50, ... or none")
    train.add_argument("--kind", choices=["overhead", "medical", "photo"], default=None,
                       help="override the inferred kind of imagery (the plan says what it inferred and why)")
    train.add_argument("--seed", type=int, default=0, help="seed of the split, crops and weights (default 0)")
    train.add_argument("--dry-run", action="store_true", help="print and write the plan, train nothing")

    predict = commands.add_parser("predict", help="segment images or GeoTIFF scenes")
    predict.add_argument("model", type=Path, help="a .keras model file")
    predict.add_argument("inputs", type=Path, nargs="+", help="image files or folders")
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    tiling_options(predict)
    predict.add_argument("--probabilities", action="store_true",
                         help="also write probabilities (GeoTIFF: float32 NAME_probabilities.tif; "
                              "images: NAME_probabilities.png, probability x 255)")
    predict.add_argument("--polygons", type=Path, default=None,
                         help="write the foreground regions as polygons, streamed as they are complete: .geojson, "
                              ".gpkg (GeoPackage) or .fgb (FlatGeobuf); map coordinates for GeoTIFFs")
    predict.add_argument("--min-area", type=_at_least(0), default=0,
                         help="regions of fewer pixels are left out of the polygons and of PNG masks")
    predict.add_argument("--simplify", type=_non_negative, default=0.0,
                         help="polygon simplification tolerance in map units (default 0: pixel outlines)")
    predict.add_argument("--overwrite", action="store_true", help="replace output files that exist already")
    predict.add_argument("--keep-largest", type=_at_least(0), default=0, metavar="N",
                         help="keep the N largest regions of a binary mask (2 for lungs; default 0: all)")
    predict.add_argument("--fill-holes", action="store_true", help="fill holes inside the regions of a binary mask")

    evaluate = commands.add_parser("evaluate", help="score a model on image / mask folders")
    evaluate.add_argument("model", type=Path, help="a .keras model file")
    evaluate.add_argument("--images", type=Path, required=True, help="folder of images")
    evaluate.add_argument("--masks", type=Path, required=True, help="folder of masks, matched by file stem")
    evaluate.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)")
    evaluate.add_argument("--mask-color", default=None, metavar="#RRGGBB",
                          help="colour-coded masks: the foreground colour (e.g. #3C1098 for Dubai buildings)")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace metrics.json and error maps that exist already in --out")
    tiling_options(evaluate)

    export = commands.add_parser("export", help="export to SavedModel, ONNX or LiteRT")
    export.add_argument("model", type=Path, help="a .keras model file")
    export.add_argument("--format", default="tf_saved_model", choices=["tf_saved_model", "onnx", "litert"],
                        help="SavedModel folder, .onnx or .tflite file (default tf_saved_model)")
    export.add_argument("--out", type=Path, default=None,
                        help="output path (default: next to the model, MODEL_savedmodel/, MODEL.onnx or MODEL.tflite)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing file, or write into a SavedModel folder that is not empty")
    export.add_argument("--input-size", type=_at_least(1), nargs=2, default=None, metavar=("H", "W"),
                        help="fix the input size (LiteRT default 256 256; SavedModel and ONNX: any size)")
    return parser


def _plain(text: str) -> str:
    """The module's docstring as terminal text: no reStructuredText backticks, no module paths."""
    text = re.sub(r"\s*\(``keras_unetpp[\w.]*``\)", "", text)
    text = re.sub(r"\(``(keras_unetpp[\w.]*)``\)", "", text)
    return text.replace("``", "")


def _at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (checked before any work)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _overlap(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"the overlap is a fraction in [0, 1), got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"the threshold is a probability strictly between 0 and 1, got {text} "
                                         "(0 or below would mark every pixel, 1 or above none)")
    return value


def _symmetries_name(text: str) -> str:
    if text not in NAMED_SYMMETRIES:
        raise argparse.ArgumentTypeError(f"{text!r} names no set of symmetries; one of "
                                         f"{', '.join(sorted(NAMED_SYMMETRIES))} (or --tta alone: the model's own set)")
    return text


def _input_range(values):
    """``--input-range``: None, ``"percentile"`` or ``(low, high)``."""
    if values is None:
        return None
    if values == ["percentile"]:
        return "percentile"
    try:
        low, high = (float(v) for v in values)
    except ValueError:
        raise ValueError(f"--input-range takes two numbers LOW HIGH or the word percentile, got {' '.join(values)}.")
    if not low < high:
        raise ValueError(f"--input-range needs LOW < HIGH, got {low:g} {high:g}.")
    return low, high


def _model_values(image, info, path: Path, args, default_range=None):
    """``image`` as the model's values: ``--input-range`` if given, else ``default_range`` (a DICOM
    film's stored range), else the rule of ``keras_unetpp.values``."""
    from keras_unetpp.values import to_model_values

    return to_model_values(image, info.input_range, _input_range(args.input_range) or default_range,
                           source=str(path), option="--input-range")


def collect_inputs(paths: list[Path]) -> list[Path]:
    """The image files named, and those inside the folders named, sorted per folder."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in PLAIN_SUFFIXES + DICOM_SUFFIXES + (".tif", ".tiff"))
            if not found:
                raise SystemExit(f"No images (PNG, JPEG, BMP, GeoTIFF, DICOM) in folder {path}.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"No file or folder at {path}.")
    return files


def _labels(prob, args):
    """(H, W) uint8: 0/1 foreground of a binary model (small regions removed, then the optional
    --keep-largest and --fill-holes), the argmax class otherwise."""
    from keras_unetpp.postprocessing import fill_holes, keep_largest_regions, remove_small_regions
    from keras_unetpp.values import predicted_labels

    if prob.shape[-1] != 1:
        return predicted_labels(prob)
    mask = remove_small_regions(prob, args.min_area, args.threshold)
    if args.keep_largest:
        mask = keep_largest_regions(mask, args.keep_largest)
    if args.fill_holes:
        mask = fill_holes(mask)
    return np.asarray(mask).reshape(prob.shape[:2]).astype("uint8")


def predict_image(model, info, image, args):
    """Probabilities of one image (values already the model's): tiled, or whole for a model that
    resizes to its working size (TTA then over the symmetries the image's shape allows)."""
    from keras_unetpp import predict_tiled
    from keras_unetpp.inference import predict_augmented, tta_transforms

    if not info.whole_image:
        return predict_tiled(model, image, tile_size=args.tile, overlap=args.overlap, batch_size=args.batch_size,
                             tta=args.tta, progress=False)
    tta = False
    if args.tta:
        square = image.shape[0] == image.shape[1]
        tta = [t for t in (info.symmetries if args.tta is True and info.symmetries else tta_transforms(args.tta))
               if square or not t[0]]  # no transposes of an oblong film
    return predict_augmented(model, np.asarray(image, np.float32)[None], tta=tta)[0]


def _predict_plain(model, info, path: Path, stem: str, args, polygons=None):
    from keras_unetpp.datasets.dicom import is_dicom, read_dicom
    from keras_unetpp.datasets.io import read_image
    from keras_unetpp.masks import write_png

    identifiers = None
    if is_dicom(path):
        film = read_dicom(path)
        image = _model_values(film.image, info, path, args, default_range=film.value_range)
        image = np.repeat(image, info.channels or 3, axis=-1)  # a film is grey: RGB models get it three times
        identifiers = film.identifiers
    else:
        image = _model_values(read_image(path, channels=info.channels or 3, allow_16bit=True), info, path, args)
    prob = predict_image(model, info, image, args)
    labels = _labels(prob, args)
    if identifiers is not None:  # the mask finds its way back to the film in the archive
        (args.out / f"{stem}_mask.json").write_text(json.dumps(
            {"source": path.name, "mask": f"{stem}_mask.png", **identifiers}, indent=2))
    write_png(args.out / f"{stem}_mask.png", labels * 255 if prob.shape[-1] == 1 else labels)
    if args.probabilities:
        for k in range(prob.shape[-1]):
            suffix = "" if prob.shape[-1] == 1 else f"_class{k}"
            write_png(args.out / f"{stem}_probabilities{suffix}.png", (prob[..., k] * 255).round().astype("uint8"))
    if polygons is not None:   # the whole image is one band
        polygons.start(path.name, prob.shape[-1], labels.shape[1])
        polygons.add(labels, prob, np.ones(labels.shape, bool))
        polygons.finish_scene()


def _predict_geotiff(model, info, path: Path, stem: str, args, polygons=None):
    from keras_unetpp.geo import predict_geotiff, require_geo

    rasterio = require_geo()
    on_band = None
    if polygons is not None:   # streamed: each band of the mask feeds the polygons as it is written
        with rasterio.open(path) as src:
            polygons.start(path.name, info.classes, src.width, src.transform, src.crs)
        on_band = polygons.add
    predict_geotiff(model, path, args.out / f"{stem}_mask.tif", tile_size=args.tile, overlap=args.overlap,
                    batch_size=args.batch_size, tta=args.tta, threshold=args.threshold,
                    probabilities_to=args.out / f"{stem}_probabilities.tif" if args.probabilities else None,
                    progress=None, input_range=_input_range(args.input_range),
                    on_band=None if on_band is None else lambda top, labels, prob, valid: on_band(labels, prob, valid))
    if polygons is not None:
        polygons.finish_scene()


class PolygonOutput:
    """``--polygons``: the regions of every input, written to one file as they are complete.

    Each scene's mask arrives in bands (one band for an image, the written bands for a GeoTIFF);
    [`BandPolygons`][keras_unetpp.polygons.BandPolygons] joins each class's regions across them,
    and [`FeatureWriter`][keras_unetpp.feature_files.FeatureWriter] writes each feature as it comes
    (GeoJSON, GeoPackage or FlatGeobuf by the suffix). Memory follows the bands, not the scene.
    """

    #: Past this many features without --min-area, a note suggests it (a speckled mask).
    SPECKLE_NOTE = 1_000_000

    def __init__(self, path: Path, args):
        from keras_unetpp.feature_files import FeatureWriter

        self.writer = FeatureWriter(path)
        self.min_area, self.simplify = args.min_area, args.simplify
        self.streams, self.source, self.noted = [], None, False

    def start(self, source: str, classes: int, width: int, transform=None, crs=None) -> None:
        from keras_unetpp.polygons import BandPolygons

        self.writer.set_crs(crs)   # one file holds one CRS: another is refused before the scene is predicted
        self.source = source
        self.streams = [BandPolygons(width, transform, self.min_area, self.simplify) for _ in range(classes)]

    def add(self, labels, prob, valid) -> None:
        """One band: the uint8 mask as written (255/0, or class indices), probabilities, valid pixels."""
        for k, stream in enumerate(self.streams):
            region = ((labels != 0) & valid) if len(self.streams) == 1 else (labels == k)
            self._write(stream.add(region, prob[..., k]), k)

    def finish_scene(self) -> None:
        for k, stream in enumerate(self.streams):
            self._write(stream.finish(), k)

    def close(self) -> int:
        return self.writer.close()

    def _write(self, features, k: int) -> None:
        for feature in features:
            if len(self.streams) > 1:
                feature["properties"]["class"] = k
            feature["properties"]["source"] = self.source
            self.writer.write(feature)
            if self.writer.count == self.SPECKLE_NOTE and self.min_area == 0 and not self.noted:
                self.noted = True
                print(f"{self.writer.path}: {self.SPECKLE_NOTE:,} polygons so far; a speckled mask? --min-area N leaves "
                      "out regions of fewer than N pixels (memory stays flat either way; the file grows).",
                      file=sys.stderr, flush=True)


def refuse_replacing(targets: list[Path], inputs: list[Path], overwrite: bool, option: str = "--out") -> None:
    """The one rule for every file a command writes: it never replaces an input (whatever
    ``--overwrite`` says) and replaces an existing output only with ``--overwrite``; a folder where
    a file goes is refused by name. Checked before any work."""
    protected = {Path(p).resolve() for p in inputs}
    for target in targets:
        resolved = Path(target).resolve()
        if resolved in protected:
            raise ValueError(f"{option}: the output {resolved} would replace an input; choose another path.")
        if resolved.is_dir():
            raise ValueError(f"{option}: {resolved} is a folder, but a file is written there; choose a file name.")
        if resolved.exists() and not overwrite:
            raise ValueError(f"{resolved} exists (from an earlier run?); pass --overwrite to replace it, "
                             f"or choose another {option}.")


def plan_outputs(files: list[Path], out: Path, overwrite: bool, geotiff, probabilities: bool = True,
                 classes: int = 1) -> list[str]:
    """The output stem of each input; refuses, before anything is written, names that collide,
    outputs that would replace an input, and existing files without ``overwrite``."""
    stems = [path.stem for path in files]
    seen: dict[str, Path] = {}
    for path, stem in zip(files, stems):
        if stem in seen:
            raise ValueError(f"{seen[stem]} and {path} would both write {stem}_mask.*: give them distinct "
                             "names or segment them into separate --out folders.")
        seen[stem] = path
    targets = []
    for path, stem in zip(files, stems):
        suffix = ".tif" if geotiff(path) else ".png"
        names = [f"{stem}_mask{suffix}"]
        if probabilities:
            names += ([f"{stem}_probabilities{suffix}"] if suffix == ".tif" or classes == 1 else
                      [f"{stem}_probabilities_class{k}{suffix}" for k in range(classes)])
        targets += [out / name for name in names]
    refuse_replacing(targets, files, overwrite, "--out")
    return stems


def _announce_tta(info, args) -> None:
    """Says which transforms --tta averages over, and warns when the model does not record them."""
    if not args.tta:
        return
    declared = info.symmetries
    if args.tta is not True:
        named = NAMED_SYMMETRIES[args.tta]
        print(f"--tta-set {args.tta}: averaging over its {len(named)} transforms (less any transposes for an oblong "
              "image)", flush=True)
        if declared is not None and set(declared) != set(named):
            print(f"--tta-set {args.tta}: the model records another set ({len(declared)} transforms) as the one it "
                  "was trained under; --tta alone uses that.", file=sys.stderr, flush=True)
    elif declared is None:
        print("--tta: the model does not record the symmetries it was trained under; averaging over the 8 of the "
              "square. A model trained with fewer (chest films: left-right mirroring only) loses accuracy under "
              "them: name its set (--tta-set mirror), or save it with with_preprocessing(..., symmetries=\"mirror\").",
              file=sys.stderr, flush=True)
    else:
        print(f"--tta: averaging over the {len(declared)} transforms the model was trained under (less any "
              "transposes for an oblong image)", flush=True)


def predict(args) -> int:
    from keras_unetpp import describe_model, load_model
    from keras_unetpp.feature_files import check_feature_path
    from keras_unetpp.geo import is_geotiff

    files = collect_inputs(args.inputs)
    scenes = [path for path in files if is_geotiff(path)]
    if scenes and (args.keep_largest or args.fill_holes):
        raise ValueError(f"--keep-largest and --fill-holes work on a whole mask; GeoTIFF scenes ({scenes[0]}"
                         f"{' and more' if len(scenes) > 1 else ''}) are segmented and written window by window, "
                         "so they would be left out silently. Run without them, or post-process the mask "
                         "GeoTIFF yourself (keras_unetpp.postprocessing).")
    if args.polygons is not None:
        refuse_replacing([args.polygons], files + [args.model], args.overwrite, "--polygons")
        check_feature_path(args.polygons)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder.")
    model = load_model(args.model, compile=False)
    info = describe_model(model)  # the model's facts, read once and passed on
    _announce_tta(info, args)
    stems = plan_outputs(files, args.out, args.overwrite, is_geotiff, args.probabilities,
                         info.classes)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"Cannot create the output folder {args.out}: {error.strerror}.") from None
    failed = []
    polygons = PolygonOutput(args.polygons, args) if args.polygons else None
    try:
        for number, (path, stem) in enumerate(zip(files, stems), 1):
            print(f"[{number}/{len(files)}] {path}", flush=True)
            try:
                (_predict_geotiff if is_geotiff(path) else _predict_plain)(model, info, path, stem, args, polygons)
            except (ValueError, FileNotFoundError) as error:
                if len(files) == 1:
                    raise
                print(f"  skipped: {error}", file=sys.stderr, flush=True)
                failed.append(path)
    finally:
        if polygons is not None:
            print(f"{polygons.close()} polygons in {args.polygons}")
    print(f"outputs in {args.out}/")
    if failed:
        print(f"keras-unetpp predict: {len(failed)} of {len(files)} inputs failed (see above): "
              + ", ".join(str(p) for p in failed), file=sys.stderr)
        return 1
    return 0


def read_truth(path: Path, color: str | None = None):
    """A ground-truth mask as (H, W) bool: with ``color``, the pixels of that colour; otherwise
    the rule of ``keras_unetpp.values`` (0/1 or 0/255; other values, colour masks and JPEG
    compression noise are refused with the option to use)."""
    from keras_unetpp.datasets.io import read_image
    from keras_unetpp.values import mask_from_file

    if color is not None:
        text = color.lstrip("#")
        try:
            rgb = np.array([int(text[i:i + 2], 16) for i in (0, 2, 4)], np.uint8) if len(text) == 6 else None
        except ValueError:
            rgb = None
        if rgb is None:
            raise ValueError(f"--mask-color takes #RRGGBB, got {color!r}.")
        return np.all(read_image(path, 3) == rgb, axis=-1)
    grey = read_image(path, 3, allow_16bit=True)
    if not (np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])):
        raise ValueError(f"{path} is a colour mask; pass --mask-color #RRGGBB to choose the foreground colour.")
    return mask_from_file(grey[..., 0], path)[..., 0].astype(bool)


def evaluate(args) -> int:
    from keras_unetpp import describe_model, load_model
    from keras_unetpp.datasets.io import list_images, match_pairs, read_image
    from keras_unetpp.evaluation import SegmentationReport, segmentation_report
    from keras_unetpp.visualization import save_error_map

    pairs = match_pairs(args.images, args.masks, extra_masks=True)  # every image needs its mask
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder.")
    refuse_replacing([args.out / "metrics.json"] + [args.out / f"{stem}_error_map.png" for stem, _, _ in pairs],
                     [p for _, image, mask in pairs for p in (image, mask)] + [args.model], args.overwrite, "--out")
    unused = len(list_images(args.masks)) - len(pairs)
    if unused:
        print(f"evaluate: scoring the {len(pairs)} images of {args.images}; {unused} masks of {args.masks} have no "
              "image there and are left out", flush=True)
    model = load_model(args.model, compile=False)
    info = describe_model(model)  # the model's facts, read once and passed on
    _announce_tta(info, args)
    if info.classes != 1:
        raise ValueError(f"{args.model} has {info.classes} classes; evaluate scores binary models "
                         "(per-class scores: keras_unetpp.evaluation in Python).")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"Cannot create the output folder {args.out}: {error.strerror}.") from None
    reports, per_image = [], {}
    for number, (stem, image_path, mask_path) in enumerate(pairs, 1):
        image = _model_values(read_image(image_path, info.channels or 3, allow_16bit=True), info, image_path, args)
        truth = read_truth(mask_path, args.mask_color)
        if image.shape[:2] != truth.shape:
            raise SystemExit(f"{image_path} is {image.shape[:2]} but its mask {mask_path} is {truth.shape}.")
        prob = predict_image(model, info, image, args)
        report = segmentation_report(truth, prob, threshold=args.threshold)
        reports.append(report)
        per_image[stem] = {k: v for k, v in report.to_dict().items() if k != "fractions"}
        save_error_map(args.out / f"{stem}_error_map.png", truth, prob, threshold=args.threshold)
        print(f"[{number}/{len(pairs)}] {stem}: IoU {report.iou:.3f}", flush=True)
    overall = SegmentationReport.combined(reports)
    print(overall)
    (args.out / "metrics.json").write_text(json.dumps(
        {"model": str(args.model), "images": str(args.images), "masks": str(args.masks), "tile": args.tile,
         "overlap": args.overlap, "tta": args.tta, "threshold": args.threshold,
         "overall": overall.to_dict(), "per_image": per_image}, indent=2, default=float))
    print(f"error maps and metrics.json in {args.out}/")
    return 0


def train(args) -> int:
    from keras_unetpp.training.run import parse_duration
    from keras_unetpp.training.run import train as train_run

    parse_duration(args.time_budget)  # a bad budget is refused before anything is read
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder.")
    if (args.out / "model.keras").exists():
        raise ValueError(f"{args.out} holds a finished run (model.keras); choose another --out.")
    train_run(args.images, args.masks, args.out, val_images=args.val_images, val_masks=args.val_masks,
              val_fraction=args.val_fraction, group_separator=args.group_separator or None,
              time_budget=args.time_budget, classes=args.classes, encoder=args.encoder, kind=args.kind,
              seed=args.seed, dry_run=args.dry_run, scenes=args.scenes, labels=args.labels,
              label_field=args.label_field)
    return 0


def export(args) -> int:
    from keras_unetpp import describe_model, load_model
    from keras_unetpp.export import SUFFIXES, check_export_path, export_model

    out = args.out or args.model.with_name(args.model.stem + (SUFFIXES[args.format] or "_savedmodel"))
    if SUFFIXES[args.format] and out.suffix != SUFFIXES[args.format]:
        out = out.with_suffix(SUFFIXES[args.format])
    if out.resolve() == args.model.resolve():
        raise ValueError(f"--out {out} would replace the model being exported; choose another path.")
    check_export_path(out, args.format, args.overwrite)  # before the model is loaded
    model = load_model(args.model, compile=False)
    shape = None
    if args.input_size:
        shape = (*args.input_size, describe_model(model).channels)
    written = export_model(model, out, args.format, input_shape=shape, overwrite=args.overwrite)
    print(f"{args.format}: {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success (errors exit with a message naming the problem).
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "tta_set", None):
        args.tta = args.tta_set  # a named set, in the form tta_transforms takes
    try:
        return {"train": train, "predict": predict, "evaluate": evaluate, "export": export}[args.command](args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"keras-unetpp {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

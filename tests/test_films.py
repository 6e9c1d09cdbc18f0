"""Chest films as they come: a saved lung model that carries its preprocessing takes 8- and 16-bit
PNGs and DICOM files of any size through `keras-unetpp predict`.

The reference is the path a user would write by hand: OpenCV's area resize to the working size,
division by 255, the bare network, OpenCV's bilinear resize back, threshold 0.5.
"""

import json

import cv2
import numpy as np
import pytest
import scipy.ndimage

from keras_unetpp import UNetPlusPlus, with_preprocessing
from keras_unetpp.cli import main

WORK = 64


def film(height=150, width=122):
    """A synthetic radiograph: bright body, two darker lungs, texture."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    image = np.full((height, width), 200.0)
    for cx in (0.32, 0.68):
        inside = ((xx - cx * width) / (0.16 * width)) ** 2 + ((yy - 0.5 * height) / (0.33 * height)) ** 2 < 1
        image[inside] = 70
    image += rng.normal(0, 12, image.shape)
    return np.clip(cv2.GaussianBlur(image, (5, 5), 1.5), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lung_model(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    core = UNetPlusPlus((None, None, 1), filters=(4, 8, 16))
    x = np.stack([cv2.resize(film(), (WORK, WORK), interpolation=cv2.INTER_AREA)[..., None] / 255.0] * 4)
    y = (x < 0.5).astype("float32")
    core.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    core.fit(x.astype("float32"), y, epochs=30, verbose=0)
    path = tmp_path_factory.mktemp("lung") / "lung.keras"
    with_preprocessing(core, channels=1, median_kernel=0, working_size=(WORK, WORK)).save(path)
    return path, core


def by_hand(core, image8):
    small = cv2.resize(image8, (WORK, WORK), interpolation=cv2.INTER_AREA)[None, ..., None] / 255.0
    prob = core.predict(small.astype("float32"), verbose=0)[0, ..., 0]
    big = cv2.resize(prob, (image8.shape[1], image8.shape[0]), interpolation=cv2.INTER_LINEAR)
    return big >= 0.5


def predicted(tmp_path, model_path, source, *extra):
    out = tmp_path / "out"
    assert main(["predict", str(model_path), str(source), "--out", str(out), "--overwrite", *extra]) == 0
    return cv2.imread(str(out / f"{source.stem}_mask.png"), cv2.IMREAD_UNCHANGED) > 0


def test_eight_bit_film_of_any_size_equals_the_hand_written_path(lung_model, tmp_path):
    path, core = lung_model
    image = film()
    cv2.imwrite(str(tmp_path / "film.png"), image)
    mask = predicted(tmp_path, path, tmp_path / "film.png")
    assert mask.shape == image.shape
    assert np.mean(mask == by_hand(core, image)) >= 0.99
    assert 0.1 < mask.mean() < 0.6  # the model found lungs, not nothing or everything


def test_one_command_segments_films_of_several_sizes(lung_model, tmp_path):
    """Films of different sizes in one call (the model is traced again with unknown sizes)."""
    path, core = lung_model
    films = {"a": film(150, 122), "b": film(97, 160), "c": film(201, 133)}
    for name, image in films.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), image)
    out = tmp_path / "out"
    assert main(["predict", str(path), *(str(tmp_path / f"{n}.png") for n in films), "--out", str(out)]) == 0
    for name, image in films.items():
        mask = cv2.imread(str(out / f"{name}_mask.png"), cv2.IMREAD_UNCHANGED) > 0
        assert mask.shape == image.shape
        assert np.mean(mask == by_hand(core, image)) >= 0.99


def test_sixteen_bit_film_needs_its_range_and_then_equals_the_eight_bit_one(lung_model, tmp_path):
    path, _ = lung_model
    image = film()
    cv2.imwrite(str(tmp_path / "film.png"), image)
    cv2.imwrite(str(tmp_path / "film16.png"), image.astype(np.uint16) * 257)
    assert main(["predict", str(path), str(tmp_path / "film16.png"), "--out", str(tmp_path / "refused")]) == 2
    eight = predicted(tmp_path, path, tmp_path / "film.png")
    sixteen = predicted(tmp_path, path, tmp_path / "film16.png", "--input-range", "0", "65535")
    np.testing.assert_array_equal(sixteen, eight)


def _dicom(path, stored, bits, photometric, intercept=0.0):
    pydicom = pytest.importorskip("pydicom", reason='the medical extra is not installed')
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # computed radiography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
    ds.Modality, ds.PhotometricInterpretation = "CR", photometric
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
    ds.PixelData = stored.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("kind", ["8-bit MONOCHROME2", "16-bit MONOCHROME1", "12-bit with rescale"])
def test_dicom_film_gives_the_mask_of_the_same_png(lung_model, tmp_path, kind):
    path, _ = lung_model
    image = film()
    cv2.imwrite(str(tmp_path / "film.png"), image)
    expected = predicted(tmp_path, path, tmp_path / "film.png")
    if kind == "8-bit MONOCHROME2":
        source = _dicom(tmp_path / "f.dcm", image, 8, "MONOCHROME2")
    elif kind == "16-bit MONOCHROME1":  # bright is dark: stored inverted, read back as the PNG
        source = _dicom(tmp_path / "f.dcm", 65535 - image.astype(np.uint32) * 257, 16, "MONOCHROME1")
    else:  # 12 bits, modality values = stored - 1024: the stored range maps onto the model's
        source = _dicom(tmp_path / "f.dcm", np.round(image.astype(float) * 4095 / 255), 12, "MONOCHROME2", -1024.0)
    mask = predicted(tmp_path, path, source)
    agreement = np.mean(mask == expected)
    assert agreement == 1.0 if kind != "12-bit with rescale" else agreement >= 0.995
    identifiers = json.loads((tmp_path / "out" / "f_mask.json").read_text())
    assert identifiers["StudyInstanceUID"] == "1.2.3.4" and identifiers["SeriesInstanceUID"] == "1.2.3.4.5"
    assert identifiers["mask"] == "f_mask.png" and identifiers["rows"] == image.shape[0]


def test_dicom_without_pydicom_names_the_extra(lung_model, tmp_path, monkeypatch):
    import builtins

    path, _ = lung_model
    real_import = builtins.__import__

    def no_pydicom(name, *args, **kwargs):
        if name.startswith("pydicom"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    source = tmp_path / "f.dcm"
    source.write_bytes(b"\0" * 128 + b"DICM")
    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    from keras_unetpp.datasets.dicom import read_dicom

    with pytest.raises(ImportError, match=r"keras-unetpp\[medical\]"):
        read_dicom(source)


def test_keep_largest_and_fill_holes_clean_the_mask(lung_model, tmp_path):
    path, _ = lung_model
    image = film()
    image[10:14, 5:9] = 40  # a dark speck outside the lungs
    image[70:74, 35:39] = 220  # a bright speck inside the left lung
    cv2.imwrite(str(tmp_path / "film.png"), image)
    mask = predicted(tmp_path, path, tmp_path / "film.png", "--keep-largest", "2", "--fill-holes")
    _, regions = scipy.ndimage.label(mask, structure=np.ones((3, 3)))
    assert regions <= 2
    np.testing.assert_array_equal(scipy.ndimage.binary_fill_holes(mask), mask)


def test_tta_mirrors_a_film_the_way_the_saved_model_was_trained(lung_model, tmp_path, capsys):
    # as the lung example saves it: trained with left-right flips only, so --tta averages the film and its mirror
    _, core = lung_model
    declared = tmp_path / "mirror.keras"
    with_preprocessing(core, channels=1, median_kernel=0, working_size=(WORK, WORK), symmetries="mirror").save(declared)
    image = film(128, 128)  # square: all 8 symmetries would fit it, only the mirror may be used
    cv2.imwrite(str(tmp_path / "film.png"), image)
    out = tmp_path / "out"
    assert main(["predict", str(declared), str(tmp_path / "film.png"), "--out", str(out), "--tta",
                 "--probabilities"]) == 0
    assert "averaging over the 2 transforms the model was trained under" in capsys.readouterr().out
    small = cv2.resize(image, (WORK, WORK), interpolation=cv2.INTER_AREA)[None, ..., None] / 255.0
    small = small.astype("float32")
    mean = (core.predict(small, verbose=0) + core.predict(small[:, :, ::-1].copy(), verbose=0)[:, :, ::-1]) / 2
    expected = cv2.resize(mean[0, ..., 0], (128, 128), interpolation=cv2.INTER_LINEAR)
    got = cv2.imread(str(out / "film_probabilities.png"), cv2.IMREAD_UNCHANGED) / 255.0
    assert np.abs(got - expected).max() <= 0.01  # 8-bit PNG steps and two bilinear resizers
    # a model that records nothing gets all 8, and the command says so
    undeclared = tmp_path / "plain.keras"
    with_preprocessing(core, channels=1, median_kernel=0, working_size=(WORK, WORK)).save(undeclared)
    assert main(["predict", str(undeclared), str(tmp_path / "film.png"), "--out", str(tmp_path / "o8"),
                 "--tta", "--probabilities"]) == 0
    assert "does not record the symmetries" in capsys.readouterr().err
    eight = cv2.imread(str(tmp_path / "o8" / "film_probabilities.png"), cv2.IMREAD_UNCHANGED) / 255.0
    assert np.abs(eight - got).max() > 0.05  # upside-down and transposed films change this model's answer
    # a model saved without a set gets the right one by name
    assert main(["predict", str(undeclared), str(tmp_path / "film.png"), "--out", str(tmp_path / "named"),
                 "--tta-set", "mirror", "--probabilities"]) == 0
    assert "--tta-set mirror: averaging over its 2 transforms" in capsys.readouterr().out
    named = cv2.imread(str(tmp_path / "named" / "film_probabilities.png"), cv2.IMREAD_UNCHANGED) / 255.0
    assert np.abs(named - expected).max() <= 0.01
    # naming a set other than the model's own is allowed, and said
    assert main(["predict", str(declared), str(tmp_path / "film.png"), "--out", str(tmp_path / "other"),
                 "--tta-set", "none"]) == 0
    assert "the model records another set (2 transforms)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", str(declared), str(tmp_path / "film.png"), "--out", str(tmp_path / "bad"),
              "--tta-set", "rotations"])
    assert "'rotations' names no set of symmetries; one of dihedral, flips, mirror, none" in capsys.readouterr().err


def test_dicom_window_is_applied_as_a_viewer_shows_the_film(tmp_path):
    """The DICOM linear window (PS3.3 C.11.2.1.2.1), written out in numpy, against read_dicom."""
    pydicom = pytest.importorskip("pydicom", reason="the medical extra is not installed")
    from keras_unetpp.datasets.dicom import read_dicom

    stored = np.random.default_rng(2).integers(0, 4096, (20, 24))
    path = _dicom(tmp_path / "w.dcm", stored, 12, "MONOCHROME2", intercept=-1024.0)
    ds = pydicom.dcmread(path)
    center, width = 300.0, 1200.0
    ds.WindowCenter, ds.WindowWidth = center, width
    ds.save_as(path, enforce_file_format=True)
    film = read_dicom(path)
    x = stored - 1024.0
    y_min, y_max = -1024.0, 4095.0 - 1024.0
    expected = np.where(x <= center - 0.5 - (width - 1) / 2, y_min,
                        np.where(x > center - 0.5 + (width - 1) / 2, y_max,
                                 ((x - (center - 0.5)) / (width - 1) + 0.5) * (y_max - y_min) + y_min))
    np.testing.assert_allclose(film.image[..., 0], expected, atol=1e-3)
    assert film.value_range == (y_min, y_max)

"""Loaders on small files written here, plus checks on the real data when present."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_unetpp.datasets import (
    class_color,
    crop_dataset,
    fixed_crops,
    load_dubai,
    load_folder_pairs,
    random_crop,
    split_by_group,
    split_fraction,
)

DATA = Path(os.environ.get("KERAS_UNETPP_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def make_dubai(root, tiles=2, size=(20, 30)):
    rng = np.random.default_rng(0)
    truth = {}
    building, road = np.array(class_color("building")), np.array(class_color("road"))
    for t in range(1, tiles + 1):
        for k in range(2):
            labels = rng.integers(0, 2, size)
            mask = np.where(labels[..., None] == 1, building, road).astype(np.uint8)
            image = rng.integers(0, 255, size + (3,), dtype=np.uint8)
            write_rgb(root / f"Tile {t}" / "images" / f"image_part_00{k}.jpg", image)
            write_rgb(root / f"Tile {t}" / "masks" / f"image_part_00{k}.png", mask)
            truth[f"Tile {t}/image_part_00{k}"] = labels
    return truth


def test_dubai_loader_reads_class_masks_by_colour(tmp_path):
    truth = make_dubai(tmp_path)
    samples = load_dubai(tmp_path, "buildings")
    assert len(samples) == 4 and {s.group for s in samples} == {"Tile 1", "Tile 2"}
    for s in samples:
        np.testing.assert_array_equal(s.mask[..., 0], truth[s.name])
        assert s.image.shape == (20, 30, 3) and s.mask.dtype == np.uint8
    assert len(load_dubai(tmp_path, "building", tiles=[2])) == 2


def test_dubai_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Tile"):
        load_dubai(tmp_path)
    make_dubai(tmp_path, tiles=1)
    with pytest.raises(ValueError, match="Unknown class 'cars'"):
        load_dubai(tmp_path, "cars")
    os.remove(tmp_path / "Tile 1" / "masks" / "image_part_001.png")
    with pytest.raises(ValueError, match="Unmatched.*image_part_001"):
        load_dubai(tmp_path)


def test_folder_pairs_matching_sizes_and_errors(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match="No image files"):
        load_folder_pairs(tmp_path)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((6, 7), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), np.array([[0, 255] * 3 + [0]] * 6, np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "b.png"), np.zeros((6, 7), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), np.ones((6, 7), np.uint8))  # 0/1 masks too
    samples = load_folder_pairs(tmp_path)
    assert [s.name for s in samples] == ["a", "b"]
    assert samples[0].mask[0, :, 0].tolist() == [0, 1, 0, 1, 0, 1, 0] and samples[1].mask.min() == 1
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), np.ones((5, 7), np.uint8))
    with pytest.raises(ValueError, match="Size mismatch.*b.png"):
        load_folder_pairs(tmp_path)
    (tmp_path / "masks" / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="Cannot read.*b.png"):
        load_folder_pairs(tmp_path)


def test_splits_never_share_a_group(tmp_path):
    make_dubai(tmp_path, tiles=3)
    samples = load_dubai(tmp_path)
    train, val = split_by_group(samples, ["Tile 3"])
    assert {s.group for s in val} == {"Tile 3"} and "Tile 3" not in {s.group for s in train}
    train, val = split_fraction(samples, 0.34, seed=1)
    assert not ({s.group for s in train} & {s.group for s in val}) and len(train) + len(val) == 6
    with pytest.raises(ValueError, match="Unknown validation groups"):
        split_by_group(samples, ["Tile 9"])


def test_crops_keep_image_and_mask_aligned(tmp_path):
    make_dubai(tmp_path, tiles=1, size=(40, 50))
    samples = load_dubai(tmp_path)
    # make the image encode its mask so alignment can be checked after cropping
    aligned = [s.__class__(s.name, s.group, np.repeat(s.mask * 200, 3, axis=-1), s.mask) for s in samples]
    rng = np.random.default_rng(0)
    for s in aligned:
        image, mask = random_crop(s, 16, rng)
        np.testing.assert_array_equal(image[..., :1] // 200, mask)
        small_image, small_mask = random_crop(s, 64, rng)  # larger than the image: padded
        assert small_image.shape == (64, 64, 3)
        np.testing.assert_array_equal(small_image[..., :1] // 200, small_mask)
    images, masks = fixed_crops(aligned, 16, per_image=3)
    assert images.shape == (6, 16, 16, 3) and images.max() <= 1.0
    ds = crop_dataset(aligned, 16, batch_size=4, seed=0)
    x, y = next(iter(ds))
    assert x.shape == (4, 16, 16, 3) and y.shape == (4, 16, 16, 1)
    np.testing.assert_array_equal((x.numpy()[..., :1] > 0.5).astype("float32"), y.numpy())


@pytest.mark.skipif(not (DATA / "aerial-dubai").is_dir(), reason=f"real data not found at {DATA}/aerial-dubai "
                    "(set KERAS_UNETPP_DATA)")
def test_real_dubai_data_loads_with_buildings_everywhere():
    samples = load_dubai(DATA / "aerial-dubai", "building", tiles=[1])
    assert len(samples) == 9
    assert all(s.mask.shape[:2] == s.image.shape[:2] for s in samples)
    assert 0.0 < np.mean([s.mask.mean() for s in samples]) < 0.6


@pytest.mark.skipif(not (DATA / "lung-xray").is_dir(), reason=f"real data not found at {DATA}/lung-xray "
                    "(set KERAS_UNETPP_DATA)")
def test_real_lung_data_loads():
    samples = load_folder_pairs(DATA / "lung-xray", channels=1)
    assert len(samples) == 79
    fractions = [s.mask.mean() for s in samples]
    assert 0.05 < np.median(fractions) < 0.6


def test_data_root_joins_the_data_set_folder_only_for_the_environment(tmp_path, monkeypatch):
    from keras_unetpp.datasets import data_root

    (tmp_path / "aerial-dubai").mkdir()
    monkeypatch.setenv("KERAS_UNETPP_DATA", str(tmp_path))
    assert data_root(subdir="aerial-dubai") == tmp_path / "aerial-dubai"
    assert data_root(tmp_path, subdir="aerial-dubai") == tmp_path  # an explicit path is taken as it is
    with pytest.raises(FileNotFoundError, match="lung-xray"):
        data_root(subdir="lung-xray")
    monkeypatch.delenv("KERAS_UNETPP_DATA")
    with pytest.raises(FileNotFoundError, match="KERAS_UNETPP_DATA"):
        data_root(subdir="aerial-dubai")


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_crop_dataset_augments_image_and_mask_with_the_same_draw(dtype):
    """The image encodes its mask (and a position ramp): after random crops and
    random symmetries the pair must still agree, and the draws must differ."""
    from keras_unetpp.datasets import Sample
    from keras_unetpp.layers import RandomDihedral

    rng = np.random.default_rng(4)
    mask = (rng.random((40, 50, 1)) > 0.5).astype(np.uint8)
    ramp = np.tile(np.arange(50, dtype=np.uint8)[None, :, None], (40, 1, 1))
    image = np.concatenate([mask * 200, ramp, ramp], axis=-1).astype(np.uint8)
    if dtype == "float32":
        image = image.astype(np.float32) / 255.0
    ds = crop_dataset([Sample("a", "a", image, mask)], 16, batch_size=8, augmentation=RandomDihedral(seed=0), seed=0)
    x, y = (t.numpy() for t in next(iter(ds)))
    np.testing.assert_array_equal((x[..., :1] > 0.5).astype("float32"), y)
    assert 0.0 <= x.min() and x.max() <= 1.0
    directions = {tuple(np.sign(np.diff(x[k, 0, :2, 1])).tolist() + np.sign(np.diff(x[k, :2, 0, 1])).tolist())
                  for k in range(len(x))}
    assert len(directions) > 1  # not all eight crops got the same orientation


def _share_of_crops_holding_the_pixel(crop: int, height: int, width: int, row: int, col: int) -> float:
    """Probability that a uniformly placed crop covers pixel (row, col), by counting positions."""
    rows = sum(1 for y in range(height - crop + 1) if y <= row < y + crop) / (height - crop + 1)
    cols = sum(1 for x in range(width - crop + 1) if x <= col < x + crop) / (width - crop + 1)
    return rows * cols


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_foreground_fraction_places_that_share_of_crops_around_objects(fraction):
    """One foreground pixel in a large image: a uniform crop holds it with a
    probability counted by hand; a foreground crop always holds it. The observed
    share of crops holding it must match fraction + (1 - fraction) * p_uniform."""
    from keras_unetpp.datasets import Sample

    height, width, crop, row, col = 60, 90, 16, 41, 7
    mask = np.zeros((height, width, 1), np.uint8)
    mask[row, col] = 1
    image = np.repeat(mask * 255, 3, axis=-1)
    ds = crop_dataset([Sample("a", "a", image, mask)], crop, batch_size=50, seed=3, foreground_fraction=fraction)
    held = np.concatenate([y.numpy().reshape(50, -1).max(axis=1) for _, y in ds.take(8)])
    expected = fraction + (1 - fraction) * _share_of_crops_holding_the_pixel(crop, height, width, row, col)
    standard_error = np.sqrt(max(expected * (1 - expected), 1e-12) / len(held))
    assert abs(held.mean() - expected) <= 4 * standard_error + 1e-9


def test_foreground_crops_come_from_images_in_proportion_to_their_foreground():
    """Two images, foreground 1 px vs 3 px: with fraction 1 the crops come
    from them about 1:3 (image identity is written into the pixels)."""
    from keras_unetpp.datasets import Sample

    samples = []
    for k, pixels in enumerate((1, 3)):
        mask = np.zeros((20, 20, 1), np.uint8)
        mask[5, 5 : 5 + pixels] = 1
        samples.append(Sample(str(k), str(k), np.full((20, 20, 3), 100 * k, np.uint8), mask))
    ds = crop_dataset(samples, 8, batch_size=100, seed=0, foreground_fraction=1.0)
    ids = np.concatenate([np.round(x.numpy()[:, 0, 0, 0] * 255 / 100) for x, _ in ds.take(4)])
    assert abs(np.mean(ids == 1) - 0.75) < 4 * np.sqrt(0.75 * 0.25 / len(ids))


def test_foreground_fraction_rejects_bad_values_and_empty_masks():
    from keras_unetpp.datasets import Sample

    empty = Sample("a", "a", np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 1), np.uint8))
    with pytest.raises(ValueError, match=r"foreground_fraction must be in \[0, 1\], got 1.5"):
        crop_dataset([empty], 8, batch_size=2, foreground_fraction=1.5)
    with pytest.raises(ValueError, match="no sample has a foreground pixel"):
        crop_dataset([empty], 8, batch_size=2, foreground_fraction=0.3)


def test_training_pipelines_leave_tf_data_autotuning_off():
    """``fit`` deletes its training iterator as it returns, and with autotuning on, tf.data waits
    there for its optimiser thread (8.6 to 12.3 s on a busy 2-core machine, in a third of the runs):
    both endless training pipelines switch it off, and still give augmented batches."""
    import keras

    from keras_unetpp.datasets import Sample, array_dataset
    from keras_unetpp.layers import RandomDihedral

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data pipelines are built on the TensorFlow backend only")
    rng = np.random.default_rng(5)
    mask = (rng.random((20, 20, 1)) > 0.5).astype(np.uint8)
    crops = crop_dataset([Sample("a", "a", mask * 200, mask)], 8, batch_size=2, augmentation=RandomDihedral(seed=0))
    arrays = array_dataset(mask[None].astype("float32"), mask[None].astype("float32"), batch_size=1,
                           augmentation=RandomDihedral(seed=0))
    for ds, size in ((crops, 8), (arrays, 20)):
        assert ds.options().autotune.enabled is False
        x, y = (t.numpy() for t in next(iter(ds)))
        assert x.shape[1:3] == y.shape[1:3] == (size, size)
        np.testing.assert_array_equal(x[..., :1] > 0.5, y > 0.5)   # the same draw moved image and mask

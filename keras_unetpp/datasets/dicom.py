"""DICOM films (radiographs) as arrays, through pydicom (the optional ``medical`` extra).

A film is read as a hospital viewer shows it: the stored pixel data with the
modality rescale (``RescaleSlope`` / ``RescaleIntercept``) applied, then the
film's first VOI transform (its window, ``WindowCenter`` / ``WindowWidth``, or
its VOI LUT) where it has one, and ``MONOCHROME1`` films (where a high value is
dark) inverted so that bright means dense everywhere. The value range is that of
the stored bit depth (``BitsStored``, after the rescale; a VOI LUT's own output
depth): 0..4095 for a 12-bit film, so the command line maps it onto what a model
takes without a guess (``keras_unetpp.values``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DicomFilm:
    """A film's pixels and where it came from.

    Attributes:
        image: (H, W, 1) float32 values, bright = dense.
        value_range: ``(low, high)`` the stored bit depth allows after the rescale.
        identifiers: Study, series and SOP instance UIDs (and the patient-free
            metadata a mask needs to be matched to its film).
    """

    image: np.ndarray
    value_range: tuple[float, float]
    identifiers: dict


def require_pydicom():
    """Imports pydicom, or raises an ImportError that names the extra to install."""
    try:
        import pydicom
    except ImportError:
        raise ImportError('Reading DICOM needs pydicom: pip install "keras-unetpp[medical]"') from None
    return pydicom


def is_dicom(path: str | Path) -> bool:
    """True for a file with the DICOM preamble (``DICM`` at byte 128) or a ``.dcm`` suffix."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as file:
            file.seek(128)
            return file.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom(path: str | Path) -> DicomFilm:
    """Reads one single-frame grayscale DICOM film.

    Args:
        path: The file.

    Returns:
        A [`DicomFilm`][keras_unetpp.datasets.dicom.DicomFilm].

    Raises:
        ImportError: Without pydicom (the ``medical`` extra).
        FileNotFoundError: If there is no file.
        ValueError: For a file that is not DICOM, has no pixel data, several
            frames, or colour samples.

    Examples:
        >>> read_dicom("missing.dcm")
        Traceback (most recent call last):
        ...
        FileNotFoundError: No DICOM file at missing.dcm.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No DICOM file at {path}.")
    pydicom = require_pydicom()
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(path)
        stored = dataset.pixel_array
    except Exception as error:  # pydicom raises several types for damaged or non-DICOM files
        raise ValueError(f"Cannot read DICOM file {path}: {error}") from None
    if int(getattr(dataset, "SamplesPerPixel", 1)) != 1 or stored.ndim != 2:
        raise ValueError(f"{path}: expected one grayscale frame, got pixel data of shape {stored.shape}.")
    bits = int(getattr(dataset, "BitsStored", stored.dtype.itemsize * 8))
    signed = int(getattr(dataset, "PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = apply_modality_lut(stored, dataset).astype(np.float64)
    ends = apply_modality_lut(np.array([low, high], stored.dtype), dataset).astype(np.float64)
    low, high = float(ends.min()), float(ends.max())
    if "VOILUTSequence" in dataset:  # a VOI LUT maps onto its own output depth
        depth = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        values = apply_voi_lut(values, dataset, index=0).astype(np.float64)
        low, high = 0.0, float(2**depth - 1)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:  # the window maps onto the same range
        values = apply_voi_lut(values, dataset, index=0).astype(np.float64)
    if str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        values = low + high - values  # high values are dark in MONOCHROME1
    identifiers = {key: str(getattr(dataset, key, "")) for key in
                   ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality", "ViewPosition")}
    identifiers.update(rows=int(stored.shape[0]), columns=int(stored.shape[1]), bits_stored=bits,
                       photometric_interpretation=str(getattr(dataset, "PhotometricInterpretation", "")))
    return DicomFilm(values.astype(np.float32)[..., None], (low, high), identifiers)

"""Polygons of a mask that arrives band by band, in memory that follows the bands, not the scene.

[`BandPolygons`][keras_unetpp.polygons.BandPolygons] takes the rows of a mask (and of its
probabilities) in order, from top to bottom, and returns each foreground region's polygon as soon as
the region is complete, that is once a band arrives that the region does not reach. Regions are
8-connected; a region that spans several bands is joined across them before it is traced, so the
result equals polygonising the whole mask at once (``scipy.ndimage.label`` then
``rasterio.features.shapes``), holes included. ``min_area``, ``simplify`` and the mean probability
are applied to the joined region.

It holds the rows from the top of the oldest unfinished region down to the last band: a few bands
for buildings or trees; a region that runs the whole height of a scene (a river, a road network)
keeps its rows until it ends.

``mask_polygons`` ([`keras_unetpp.geo.mask_polygons`][keras_unetpp.geo.mask_polygons]) is this
class fed one band; ``keras-unetpp predict --polygons`` feeds it the bands of a GeoTIFF as they are
predicted, and writes each feature as it comes
([`keras_unetpp.feature_files`][keras_unetpp.feature_files]).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Rows counted at a time when regions are measured (bounds the temporaries of a wide band).
ROWS_AT_A_TIME = 64
#: 8-connectivity for ``scipy.ndimage.label``.
EIGHT = np.ones((3, 3), bool)


class BandPolygons:
    """Joins the foreground regions of bands of rows and traces each one once it is complete.

    Args:
        width: Columns of every band.
        transform: ``affine.Affine`` pixel-to-map transform of the whole mask (its row 0 is the
            first band's first row), or ``None`` for pixel coordinates (x right, y down).
        min_area: Regions of fewer pixels (counted over all their bands) are left out.
        simplify: Douglas-Peucker tolerance in map units (0: exact pixel outlines).

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((6, 5), bool); mask[1:5, 1:3] = True     # one region over two bands
        >>> stream = BandPolygons(width=5)
        >>> first = list(stream.add(mask[:3]))                        # not complete yet: nothing
        >>> done = list(stream.add(mask[3:])) + list(stream.finish())
        >>> len(first), [feature["properties"].get("pixels") for feature in done]
        (0, [8])
    """

    def __init__(self, width: int, transform=None, min_area: int = 0, simplify: float = 0.0):
        from keras_unetpp.checks import finite_number, whole_number

        self.width = whole_number(width, "width", minimum=1)
        self.min_area = whole_number(min_area, "min_area", minimum=0)
        self.simplify = finite_number(simplify, "simplify", minimum=0.0)
        self.transform = transform
        self.top = 0                                      # scene row of the carried rows' first row
        self.mask = np.zeros((0, self.width), bool)       # carried rows: unfinished regions only
        self.probabilities: np.ndarray | None = None
        self.emitted = 0
        self.rows_seen = 0

    def add(self, mask, probabilities=None) -> Iterator[dict]:
        """Takes the next band and yields the features of the regions it completes.

        Args:
            mask: (rows, width) foreground of the band: bool or numbers (non-zero = foreground).
            probabilities: Optional (rows, width) probabilities of the band: each feature gets the
                mean over its pixels. Give them with every band or with none.

        Yields:
            GeoJSON features (see [`keras_unetpp.geo.mask_polygons`][keras_unetpp.geo.mask_polygons]).
        """
        band = np.asarray(mask)
        if band.ndim == 3 and band.shape[-1] == 1:
            band = band[..., 0]
        if band.ndim != 2 or band.shape[1] != self.width:
            raise ValueError(f"a band must be (rows, {self.width}), got shape {band.shape}.")
        if (probabilities is None) != (self.probabilities is None) and self.rows_seen:
            raise ValueError("give probabilities with every band or with none.")
        # the carried rows and this band (no copy of the carried part when nothing is carried)
        self.mask = band != 0 if not self.mask.shape[0] else np.concatenate([self.mask, band != 0])
        if probabilities is not None:
            prob = np.asarray(probabilities)   # float32 stays float32: half the memory of float64
            prob = prob if prob.dtype in (np.float32, np.float64) else prob.astype(np.float64)
            prob = prob.reshape(band.shape[0], self.width, -1)[..., 0]
            carried = self.probabilities
            self.probabilities = prob if carried is None or not carried.shape[0] else np.concatenate([carried, prob])
        self.rows_seen += band.shape[0]
        yield from self._emit(last=False)

    def finish(self) -> Iterator[dict]:
        """Yields the regions that reach the last band (call once, after the last ``add``)."""
        yield from self._emit(last=True)

    def _emit(self, last: bool) -> Iterator[dict]:
        import scipy.ndimage

        labels, count = scipy.ndimage.label(self.mask, structure=EIGHT)
        if count == 0:
            self._drop_rows(self.mask.shape[0])
            return
        open_labels = np.zeros(count + 1, bool)
        if not last:
            open_labels[np.unique(labels[-1])] = True   # they may go on in the next band
            open_labels[0] = False
        final = ~open_labels
        final[0] = False
        if final.any():
            still_open = open_labels[labels]
            self.mask &= still_open
            labels[still_open] = 0   # in place: only the finished regions are traced
            yield from self._trace(labels, np.flatnonzero(final))
        # rows above the first unfinished region hold nothing more
        rows = np.flatnonzero(self.mask.any(axis=1))
        self._drop_rows(rows[0] if rows.size else self.mask.shape[0])

    def _drop_rows(self, n: int) -> None:
        self.mask = self.mask[n:]
        if self.probabilities is not None:
            self.probabilities = self.probabilities[n:]
        self.top += n

    def _trace(self, labels: np.ndarray, index: np.ndarray) -> Iterator[dict]:
        """Features of the regions ``index`` of ``labels`` (carried rows), in the order they are traced."""
        import rasterio.features
        import shapely.geometry
        from affine import Affine

        size = int(index.max()) + 1
        counts = np.zeros(size, np.int64)
        sums = np.zeros(size) if self.probabilities is not None else None
        for top in range(0, labels.shape[0], ROWS_AT_A_TIME):   # temporaries of a few rows, not of the band
            rows = labels[top:top + ROWS_AT_A_TIME].ravel()
            counts += np.bincount(rows, minlength=size)[:size]
            if sums is not None:
                weights = self.probabilities[top:top + ROWS_AT_A_TIME].ravel()
                sums += np.bincount(rows, weights=weights, minlength=size)[:size]
        pixels = counts[index]
        keep = pixels >= self.min_area
        if not keep.any():
            return
        if not keep.all():
            small = np.zeros(counts.size, bool)
            small[index[~keep]] = True
            labels[small[labels]] = 0
        # the carried rows start at scene row self.top
        offset = (self.transform or Affine.identity()) @ Affine.translation(0, self.top)
        # each feature as it is traced: nothing per region is collected (a speckled band holds many)
        for geometry, value in rasterio.features.shapes(labels.astype(np.int32, copy=False), mask=labels > 0,
                                                        connectivity=8, transform=offset):
            label = int(value)
            shape = shapely.geometry.shape(geometry)
            if self.simplify > 0:
                shape = shape.simplify(self.simplify, preserve_topology=True)
            self.emitted += 1
            properties = {"id": self.emitted, "pixels": int(counts[label]), "area": float(shape.area)}
            if sums is not None:
                properties["mean_probability"] = round(float(sums[label] / counts[label]), 4)
            yield {"type": "Feature", "geometry": shapely.geometry.mapping(shape), "properties": properties}

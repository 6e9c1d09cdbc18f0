"""Polygons of a mask that arrives band by band, in memory that follows the bands, not the scene.

[`BandPolygons`][keras_unetpp.polygons.BandPolygons] takes the rows of a mask (and of its
probabilities) in order, from top to bottom, and returns each foreground region's polygon as soon as
the region is complete, that is once a band arrives that the region does not reach. Regions are
8-connected; a region that spans several bands is joined across them before it is traced, so the
result equals polygonising the whole mask at once (``scipy.ndimage.label`` then
``rasterio.features.shapes``), holes included. ``min_area``, ``simplify`` and the mean probability
are applied to the joined region.

Between bands it holds the band's last row and, for each unfinished region, only that region's own
pixels (cropped to its extent in each band) with its pixel count and probability sum. A long thin
region (a road, a river bank, a line along the scene's edge) therefore costs its own pixels, not
the rows it spans; a region as wide as the scene costs about a byte per pixel of its extent until it
ends.

``mask_polygons`` ([`keras_unetpp.geo.mask_polygons`][keras_unetpp.geo.mask_polygons]) is this
class fed one band; ``keras-unetpp predict --polygons`` feeds it the bands of a GeoTIFF as they are
predicted, and writes each feature as it comes
([`keras_unetpp.feature_files`][keras_unetpp.feature_files]).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

#: Rows counted at a time when regions are measured (bounds the temporaries of a wide band).
ROWS_AT_A_TIME = 64
#: Regions traced by one GDAL call (GDAL holds a call's polygons until it ends: ~1.3 kB each).
REGIONS_AT_A_TIME = 4096
#: 8-connectivity for ``scipy.ndimage.label``.
EIGHT = np.ones((3, 3), bool)


@dataclass
class _OpenRegion:
    """A region that reached the last band so far: its pixels, band by band, and its totals."""

    pieces: list = field(default_factory=list)   # (scene row, column, bool array) of each band's part
    pixels: int = 0
    probability_sum: float = 0.0

    def absorb(self, other: _OpenRegion) -> None:
        self.pieces += other.pieces
        self.pixels += other.pixels
        self.probability_sum += other.probability_sum


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
        self.edge = np.zeros(self.width, np.int64)   # the last row seen: the open region of each pixel (0: none)
        self.open: dict[int, _OpenRegion] = {}
        self.with_probabilities: bool | None = None
        self.emitted = 0
        self.rows_seen = 0
        self._next_id = 1

    @property
    def held_pixels(self) -> int:
        """Pixels held for unfinished regions (their cropped pieces): what memory follows."""
        return sum(piece.size for region in self.open.values() for _, _, piece in region.pieces)

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
        if self.with_probabilities is not None and (probabilities is not None) != self.with_probabilities:
            raise ValueError("give probabilities with every band or with none.")
        self.with_probabilities = probabilities is not None
        prob = None
        if probabilities is not None:
            prob = np.asarray(probabilities)   # float32 stays float32: half the memory of float64
            prob = prob if prob.dtype in (np.float32, np.float64) else prob.astype(np.float64)
            prob = prob.reshape(band.shape[0], self.width, -1)[..., 0]
        if band.shape[0] == 0:
            return
        yield from self._join(band != 0, prob)
        self.rows_seen += band.shape[0]

    def finish(self) -> Iterator[dict]:
        """Yields the regions that reach the last band (call once, after the last ``add``)."""
        for region in self.open.values():
            yield from self._trace_pieces(region)
        self.open = {}
        self.edge = np.zeros(self.width, np.int64)

    def _join(self, band: np.ndarray, prob: np.ndarray | None) -> Iterator[dict]:
        """Labels the last row seen with the band, so that open regions continue or end, then traces
        the regions that ended."""
        import scipy.ndimage

        carried = self.edge != 0
        has_edge = bool(carried.any())
        stacked = np.concatenate([carried[None], band]) if has_edge else band
        labels, count = scipy.ndimage.label(stacked, structure=EIGHT)
        start = int(has_edge)                  # the band's rows in ``labels``
        size = count + 1
        # components that share an old region are one region (a U whose arms reach the band)
        parent = np.arange(size)

        def root(component: int) -> int:
            while parent[component] != component:
                parent[component] = parent[parent[component]]
                component = parent[component]
            return component

        joined = np.zeros(size, bool)
        owners: dict[int, int] = {}           # old region -> the root of its components
        if has_edge:
            pairs = np.unique(np.stack([labels[0][carried], self.edge[carried]]), axis=1)
            joined[pairs[0]] = True
            for component, region in pairs.T.tolist():
                if region in owners:
                    a, b = root(owners[region]), root(component)
                    parent[max(a, b)] = min(a, b)
                else:
                    owners[region] = component
        reaches_end = np.zeros(size, bool)
        reaches_end[labels[-1]] = True
        reaches_end[0] = False
        joined |= reaches_end
        joined[0] = False
        counts, sums = self._totals(labels[start:], prob, size)
        # regions that begin and end in this band: traced from the band in groups
        fresh = np.flatnonzero(~joined)
        fresh = fresh[(fresh > 0) & (counts[fresh] >= max(self.min_area, 1))]
        yield from self._trace_band(labels[start:], fresh, counts, sums)
        # the rest continue old regions and/or go on into the next band
        ids = np.flatnonzero(joined)
        boxes = self._boxes(labels[start:], ids, size)
        groups: dict[int, list[int]] = {}
        for component in ids.tolist():
            groups.setdefault(root(component), []).append(component)
        old_of: dict[int, list[int]] = {}
        for region, component in owners.items():
            old_of.setdefault(root(component), []).append(region)
        new_edge_of = np.zeros(size, np.int64)
        for group_root, components in groups.items():
            region = _OpenRegion()
            for old in old_of.get(group_root, ()):
                region.absorb(self.open.pop(old))
            for component in components:
                box = boxes.get(component)
                if box is not None:
                    rows, cols = box
                    piece = labels[start:][rows, cols] == component
                    region.pieces.append((self.rows_seen + rows.start, cols.start, piece))
                region.pixels += int(counts[component])
                region.probability_sum += float(sums[component]) if sums is not None else 0.0
            if reaches_end[components].any():
                new_edge_of[components] = self._next_id
                self.open[self._next_id] = region
                self._next_id += 1
            else:
                yield from self._trace_pieces(region)
        self.edge = new_edge_of[labels[-1]]

    def _totals(self, labels: np.ndarray, prob: np.ndarray | None, size: int):
        """Pixel counts (and probability sums) of every label of the band, a few rows at a time."""
        counts = np.zeros(size, np.int64)
        sums = np.zeros(size) if prob is not None else None
        for top in range(0, labels.shape[0], ROWS_AT_A_TIME):   # temporaries of a few rows, not of the band
            rows = labels[top:top + ROWS_AT_A_TIME].ravel()
            counts += np.bincount(rows, minlength=size)[:size]
            if sums is not None:
                sums += np.bincount(rows, weights=prob[top:top + ROWS_AT_A_TIME].ravel(), minlength=size)[:size]
        return counts, sums

    @staticmethod
    def _boxes(labels: np.ndarray, ids: np.ndarray, size: int) -> dict:
        """{label: (row slice, column slice)} in the band of the labels ``ids`` that have pixels there."""
        import scipy.ndimage

        if ids.size == 0:
            return {}
        renumber = np.zeros(size, np.int32)
        renumber[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
        found = scipy.ndimage.find_objects(renumber[labels], max_label=ids.size)
        return {int(label): box for label, box in zip(ids, found) if box is not None}

    def _trace_band(self, labels: np.ndarray, index: np.ndarray, counts, sums) -> Iterator[dict]:
        """Features of the band's regions ``index``, ``REGIONS_AT_A_TIME`` per GDAL call.

        GDAL holds every polygon of one ``rasterio.features.shapes`` call until the call ends, so a
        speckled band traced whole would hold tens of thousands of them. Labels run in scan order, so
        a group of consecutive labels is a strip of rows, and only that strip is traced.
        """
        if index.size == 0:
            return
        first = np.full(counts.size, labels.shape[0], np.int64)   # first row of each label's first chunk
        end = np.zeros(counts.size, np.int64)                      # end row of its last chunk
        for top in range(0, labels.shape[0], ROWS_AT_A_TIME):
            present = np.bincount(labels[top:top + ROWS_AT_A_TIME].ravel(), minlength=counts.size) > 0
            first[present] = np.minimum(first[present], top)
            end[present] = min(top + ROWS_AT_A_TIME, labels.shape[0])
        chosen = np.zeros(counts.size, bool)
        for start in range(0, index.size, REGIONS_AT_A_TIME):
            group = index[start:start + REGIONS_AT_A_TIME]
            top, bottom = int(first[group].min()), int(end[group].max())
            chosen[group] = True
            strip = labels[top:bottom]
            inside = chosen[strip]
            chosen[group] = False
            for geometry, value in self._shapes(np.where(inside, strip, 0).astype(np.int32, copy=False), inside,
                                                self.rows_seen + top, 0):
                label = int(value)
                yield self._feature(geometry, int(counts[label]), None if sums is None else float(sums[label]))

    def _trace_pieces(self, region: _OpenRegion) -> Iterator[dict]:
        """The feature of a region that spanned bands: its pieces pasted on its extent and traced once."""
        import shapely

        if region.pixels < max(self.min_area, 1) or not region.pieces:
            return
        top = min(row for row, _, _ in region.pieces)
        left = min(col for _, col, _ in region.pieces)
        bottom = max(row + piece.shape[0] for row, _, piece in region.pieces)
        right = max(col + piece.shape[1] for _, col, piece in region.pieces)
        canvas = np.zeros((bottom - top, right - left), np.uint8)
        for row, col, piece in region.pieces:
            canvas[row - top:row - top + piece.shape[0], col - left:col - left + piece.shape[1]] |= piece
        parts = [geometry for geometry, _ in self._shapes(canvas, canvas.astype(bool), top, left)]
        geometry = parts[0] if len(parts) == 1 else shapely.geometry.mapping(
            shapely.union_all([shapely.geometry.shape(part) for part in parts]))
        yield self._feature(geometry, region.pixels, region.probability_sum if self.with_probabilities else None)

    def _shapes(self, image: np.ndarray, mask: np.ndarray, row: int, col: int):
        """``rasterio.features.shapes`` of ``image`` whose pixel (0, 0) is the scene's (row, col)."""
        import rasterio.features
        from affine import Affine

        offset = (self.transform or Affine.identity()) @ Affine.translation(col, row)
        return rasterio.features.shapes(image, mask=mask, connectivity=8, transform=offset)

    def _feature(self, geometry: dict, pixels: int, probability_sum: float | None) -> dict:
        import shapely.geometry

        shape = shapely.geometry.shape(geometry)
        if self.simplify > 0:
            shape = shape.simplify(self.simplify, preserve_topology=True)
        self.emitted += 1
        properties = {"id": self.emitted, "pixels": pixels, "area": float(shape.area)}
        if probability_sum is not None:
            properties["mean_probability"] = round(probability_sum / pixels, 4)
        return {"type": "Feature", "geometry": shapely.geometry.mapping(shape), "properties": properties}

"""Reading Sentinel-2 L1C scenes window by window on their 10 m grid.

Scene prediction (:mod:`dsen2cr.scene.predict`) never loads a whole scene: it asks for one window
of the output grid at a time (or, through :class:`dsen2cr.scene.inputs.FileInputs`, for
block-aligned chunks of rows). This module turns the Sentinel-2 inputs users have into such
windows; :mod:`dsen2cr.scene.sentinel1` does the same for Sentinel-1 on this grid.

Sentinel-2 (:func:`open_s2` -> :class:`S2Scene`):

* a **13-band GeoTIFF** in the SEN12MS-CR convention (L1C digital numbers, bands B1, B2, B3, B4,
  B5, B6, B7, B8, B8A, B9, B10, B11, B12, as exported from Google Earth Engine), any integer or
  float dtype; or
* a **Sentinel-2 L1C product**, the ``.SAFE`` folder or its ``.zip`` (read in place through GDAL's
  ``/vsizip/``). The 13 JPEG 2000 bands at 10, 20 and 60 m are put on the 10 m grid of B2 by
  nearest-neighbour upsampling (each 20 m pixel becomes 2 x 2 pixels, each 60 m pixel 6 x 6, as
  Earth Engine's default resampling does for SEN12MS-CR). Products of processing baseline 04.00
  and later store ``DN + 1000``: the ``RADIO_ADD_OFFSET`` of each band in ``MTD_MSIL1C.xml``
  (typically -1000) is added back, so values match the training data, and results below 0 are
  clipped to 0. Older products have no offset.

Nodata: a pixel is nodata where all 13 raw bands are 0 (the L1C ``NODATA`` special value; for a
GeoTIFF also where all bands equal its nodata value, or any band is not finite): the rule of
:func:`dsen2cr.validity.s2_valid`. For products with an offset, this is decided on the raw
values, before the offset is removed.

Every reader holds its own GDAL handles: rasterio datasets are not thread-safe, so each thread
opens its own reader from the (picklable, immutable) scene description.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from dsen2cr.errors import DataError, InputNotFoundError, Text
from dsen2cr.grid import Grid
from dsen2cr.io import check_band_count, check_readable, gdal_reason, no_georef_warning, open_raster
from dsen2cr.scaling import REFLECTANCE_SCALE, S2_BANDS
from dsen2cr.validity import s2_valid

_SAFE_BAND_SUFFIX = {
    "B1": "B01", "B2": "B02", "B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06", "B7": "B07",
    "B8": "B08", "B8A": "B8A", "B9": "B09", "B10": "B10", "B11": "B11", "B12": "B12",
}  # fmt: skip
_BAND_RE = re.compile(r"GRANULE/([^/]+)/IMG_DATA/(?:[^/]+_)?(B\d\d|B8A)\.jp2$", re.IGNORECASE)


def _window_tuple(window: Window) -> tuple[int, int, int, int]:
    """(row_off, col_off, height, width) of a rasterio Window (integers)."""
    return int(window.row_off), int(window.col_off), int(window.height), int(window.width)


# --------------------------------------------------------------------------- Sentinel-2
@dataclass(frozen=True)
class S2Scene:
    """An opened-and-checked Sentinel-2 input: where the bands are and the 10 m grid.

    Attributes:
        path: the path the user gave (GeoTIFF, ``.SAFE`` folder or ``.zip``).
        kind: ``"geotiff"`` or ``"safe"``.
        band_paths: GDAL paths of the data: one GeoTIFF, or the 13 JP2 files in band order.
        offsets: per-band DN offset added to raw values (``RADIO_ADD_OFFSET``, e.g. -1000), zeros
            when there is none.
        gain: factor applied after the offset (10000 / ``QUANTIFICATION_VALUE``; 1 normally).
        grid: the 10 m grid (CRS, None if not georeferenced; transform; size in pixels), also
            read through the properties :attr:`crs`, :attr:`transform`, :attr:`width`,
            :attr:`height` and :attr:`shape`.
        nodata: raw value that marks nodata when all bands have it (besides 0), or None.
        baseline: processing baseline of an L1C product (e.g. ``"04.00"``), None for a GeoTIFF.
        name: short name used for output files (file stem or product name).
        factors: per band, the integer ratio of its pixel size to the 10 m grid's (SAFE only).
        block_rows: rows of one block of the 10 m data (the GeoTIFF's, or B2's for a product):
            readers that decode whole rows align their chunks to it.
    """

    path: Path
    kind: str
    band_paths: tuple[str, ...]
    offsets: tuple[float, ...]
    gain: float
    grid: Grid
    nodata: float | None = None
    baseline: str | None = None
    name: str = ""
    factors: tuple[int, ...] = field(default=(1,) * 13)
    block_rows: int = 256

    @property
    def crs(self) -> CRS | None:
        """Coordinate reference system of the 10 m grid (None if not georeferenced)."""
        return self.grid.crs

    @property
    def transform(self) -> Affine:
        """Affine transform of the 10 m grid (pixel -> CRS coordinates)."""
        return self.grid.transform

    @property
    def width(self) -> int:
        """Grid width in pixels."""
        return self.grid.width

    @property
    def height(self) -> int:
        """Grid height in pixels."""
        return self.grid.height

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the 10 m grid."""
        return self.grid.shape

    @property
    def has_offset(self) -> bool:
        """Whether a radiometric offset is removed (baseline >= 04.00)."""
        return any(o != 0 for o in self.offsets)

    def open(self) -> S2Reader:
        """A reader with its own GDAL handles (one per thread)."""
        return S2Reader(self)


class S2Reader:
    """Reads windows of the 10 m grid of an :class:`S2Scene` (use as a context manager)."""

    def __init__(self, scene: S2Scene) -> None:
        self.scene = scene
        self._datasets: list[DatasetReader] = []
        try:
            with no_georef_warning():
                for p in scene.band_paths:
                    self._datasets.append(rasterio.open(p))
        except Exception as exc:
            self.close()
            raise DataError(f"cannot open S2 image {scene.path}: {exc}") from None

    def __enter__(self) -> S2Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the GDAL handles."""
        for ds in self._datasets:
            ds.close()
        self._datasets = []

    def _read_band(self, band: int, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        """Raw values of one band (0-based index) on the 10 m window, float32 (h, w)."""
        if self.scene.kind == "geotiff":
            return self._datasets[0].read(band + 1, window=Window(c0, r0, w, h)).astype(
                np.float32, copy=False
            )
        f = self.scene.factors[band]
        ds = self._datasets[band]
        if f == 1:
            return ds.read(1, window=Window(c0, r0, w, h)).astype(np.float32, copy=False)
        # nearest-neighbour upsampling by an integer factor: coarse pixel = fine pixel // f
        cr0, cc0 = r0 // f, c0 // f
        cr1, cc1 = (r0 + h - 1) // f + 1, (c0 + w - 1) // f + 1
        coarse = ds.read(1, window=Window(cc0, cr0, cc1 - cc0, cr1 - cr0)).astype(np.float32)
        fine = np.repeat(np.repeat(coarse, f, axis=0), f, axis=1)
        dr, dc = r0 - cr0 * f, c0 - cc0 * f
        return fine[dr : dr + h, dc : dc + w]

    def read_raw(
        self, window: Window, bands: tuple[int, ...] | None = None, native: bool = False
    ) -> np.ndarray:
        """Raw values (offset not removed) of a window.

        Args:
            window: integer offsets and size on the 10 m grid.
            bands: 0-based band indices (default: all 13, in order).
            native: keep the file's own dtype where the scene is one GeoTIFF and all 13 bands
                are read (uint16 for SEN12MS-CR-style files: half the memory, for readers that
                keep rows).

        Returns:
            (len(bands), h, w) raw values: float32, or the file's dtype with ``native``.

        Raises:
            DataError: the data does not decode (corrupt or truncated file).
        """
        r0, c0, h, w = _window_tuple(window)
        bands = tuple(range(13)) if bands is None else bands
        try:
            if self.scene.kind == "geotiff" and len(bands) == 13:
                raw = self._datasets[0].read(window=Window(c0, r0, w, h))
                return raw if native else raw.astype(np.float32, copy=False)
            return np.stack([self._read_band(b, r0, c0, h, w) for b in bands])
        except RasterioError as exc:
            raise DataError(
                f"cannot read S2 image {self.scene.path}: corrupt or truncated ({gdal_reason(exc)})"
            ) from None

    def _to_dn(self, raw: np.ndarray, bands: tuple[int, ...]) -> np.ndarray:
        s = self.scene
        if s.has_offset or s.gain != 1.0:
            off = np.asarray([s.offsets[b] for b in bands], np.float32)[:, None, None]
            raw = np.maximum(raw + off, 0.0)
            if s.gain != 1.0:
                raw = raw * np.float32(s.gain)
        return raw

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """One window of the scene in DN, offset removed.

        Args:
            window: a rasterio ``Window`` of the 10 m grid (integer offsets and size).

        Returns:
            ``(dn, valid)``: float32 (13, h, w) DN (>= 0 for L1C products; nodata pixels are
            0) and bool (h, w), False where the input is nodata.

        Raises:
            DataError: the data does not decode (corrupt or truncated file).
        """
        return self.to_dn(self.read_raw(window))

    def to_dn(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw values of all 13 bands (any dtype, from :meth:`read_raw`) -> ``(dn, valid)`` as
        :meth:`read` returns them.

        Args:
            raw: (13, h, w) raw values (not modified).

        Returns:
            float32 (13, h, w) DN, 0 where nodata, and bool (h, w) validity
            (:func:`~dsen2cr.validity.s2_valid` of the raw values).
        """
        valid = s2_valid(raw, self.scene.nodata)  # on the file's own values and dtype
        if not valid.any():  # an empty part of the scene (nodata borders, sparse files)
            return np.zeros(raw.shape, np.float32), valid
        dn = self._to_dn(raw.astype(np.float32, copy=False), tuple(range(13)))
        if not valid.all():  # a new array: ``raw`` may be the caller's
            dn = np.where(valid[None], dn, np.float32(0.0))
        return dn.astype(np.float32, copy=False), valid


SAMPLE_GRID = 4
"""Windows per axis that :func:`implausible_s2` reads (16 windows of :data:`SAMPLE_SIZE`)."""
SAMPLE_SIZE = 64


def sample_windows(height: int, width: int) -> list[Window]:
    """A few small windows spread over a grid (each decodes about one block).

    Args:
        height: grid rows, pixels.
        width: grid columns, pixels.

    Returns:
        Up to :data:`SAMPLE_GRID` x :data:`SAMPLE_GRID` windows of at most :data:`SAMPLE_SIZE`
        pixels a side, row-major.
    """
    h, w = min(SAMPLE_SIZE, height), min(SAMPLE_SIZE, width)
    rows = sorted({round(i * (height - h) / max(1, SAMPLE_GRID - 1)) for i in range(SAMPLE_GRID)})
    cols = sorted({round(i * (width - w) / max(1, SAMPLE_GRID - 1)) for i in range(SAMPLE_GRID)})
    return [Window(c, r, w, h) for r in rows for c in cols]


def implausible_s2(scene: S2Scene) -> list[str]:
    """What is far outside L1C digital-number conventions in a sample of the scene (GeoTIFFs).

    Args:
        scene: the S2 input (a product is L1C by construction: nothing to report).

    Returns:
        One sentence per finding (empty for a plausible input): an 8-bit file, negative values,
        or values that look like reflectance in [0, 1] instead of DN.
    """
    if scene.kind != "geotiff":
        return []  # products are L1C by construction
    out = []
    with no_georef_warning(), rasterio.open(scene.band_paths[0]) as ds:
        dtype = np.dtype(ds.dtypes[0])
        if dtype.itemsize == 1:
            out.append(f"S2 image {scene.path} is {dtype}: L1C digital numbers (reflectance x "
                       "10000) need 16 bits; an 8-bit picture cannot be turned back into them")  # fmt: skip
        try:
            parts = [ds.read(window=w).astype(np.float64) for w in sample_windows(ds.height, ds.width)]
        except RasterioError:
            return out  # corrupt data is reported where it is read
    sample = np.concatenate([p.reshape(13, -1) for p in parts], axis=1)
    values = sample[:, s2_valid(sample, scene.nodata)]
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        if lo < 0:
            out.append(f"S2 image {scene.path} has negative values (down to {lo:g}): L1C digital "
                       "numbers are >= 0")  # fmt: skip
        if hi <= 2.0:
            out.append(f"S2 image {scene.path} has values of at most {hi:.3g}: they look like "
                       "reflectance in [0, 1], but dsen2cr expects digital numbers (reflectance "
                       "x 10000)")  # fmt: skip
    return out


BAND_CHECK_PIXELS = 100
"""Valid sampled pixels the band-order test needs to conclude."""


def _band_name(text: str | None) -> str | None:
    """``"B01"``, ``"b1"``, ``"Band 8A"`` -> ``"B1"``, ``"B8A"``; None for anything else."""
    m = re.fullmatch(r"\s*(?:BAND|B)\s*0*(\d{1,2}A?)\s*", (text or "").upper())
    return f"B{m[1]}" if m else None


def band_order_problem(scene: S2Scene) -> Text | None:
    """Why the bands of a 13-band GeoTIFF are not in the order B1 ... B12 (with B8A), or None.

    Where the file names its bands (band descriptions that are Sentinel-2 band names), they must
    be in that order. Otherwise a physical test on a sample of valid pixels: B10 (1375 nm, in a
    water-vapour absorption band) is darker than B3 (green) at the top of the atmosphere, over
    land, water, snow and under thick or cirrus clouds alike (which brighten B10, and B3 more).
    On the 46 real Sentinel-2 patches in ``../shared/realdata`` (SEN12MS-CR cloudy and clear,
    fully overcast included, and Sen1Floods11), every valid pixel passes in the right order and
    none with the bands reversed; a file is refused when fewer than half of the sampled pixels
    pass (no false alarm on those files).

    Args:
        scene: the S2 input (a product names its band files: never a problem).

    Returns:
        The reason, with the option that skips the check, or None.
    """
    if scene.kind != "geotiff":
        return None  # products name their band files
    skip = Text("(pass {band_check} if they are in the right order)", band_check=False)
    with no_georef_warning(), rasterio.open(scene.band_paths[0]) as ds:
        names = [_band_name(d) for d in ds.descriptions]
        if all(names) and sorted(names, key=str) == sorted(S2_BANDS, key=str):
            if list(names) != list(S2_BANDS):
                return Text(f"S2 image {scene.path} names its bands {', '.join(map(str, names))}: "
                            f"dsen2cr expects {', '.join(S2_BANDS)} {skip.template}",
                            band_check=False)  # fmt: skip
            return None
        try:
            parts = [ds.read(indexes=[3, 11], window=w).astype(np.float64)
                     for w in sample_windows(ds.height, ds.width)]  # fmt: skip
        except RasterioError:
            return None  # corrupt data is reported where it is read
    sample = np.concatenate([p.reshape(2, -1) for p in parts], axis=1)
    b3, b10 = sample[:, s2_valid(sample, scene.nodata)]  # the rule, on the two bands read
    if b3.size < BAND_CHECK_PIXELS:
        return None
    passing = float(np.mean(b10 < b3))
    if passing >= 0.5:
        return None
    return Text(f"S2 image {scene.path}: its band 11 is brighter than its band 3 in "
                f"{100 * (1 - passing):.0f} % of sampled pixels, which B10 (1375 nm) never is "
                f"against B3 (green): the bands do not look like B1 ... B12 in SEN12MS-CR order "
                f"{skip.template}", band_check=False)  # fmt: skip


def open_s2(path: str | os.PathLike[str]) -> S2Scene:
    """Inspect a Sentinel-2 input and describe its 10 m grid.

    Args:
        path: a 13-band GeoTIFF (DN), a Sentinel-2 L1C ``.SAFE`` folder, or its ``.zip``.

    Returns:
        The :class:`S2Scene`.

    Raises:
        DataError: missing or unreadable file, wrong band count, incomplete or inconsistent
            product.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"S2 image not found: {p}")
    if p.is_dir():
        return _open_safe_dir(p)
    if p.suffix.lower() == ".zip":
        return _open_safe_zip(p)
    return _open_s2_geotiff(p)


def _open_s2_geotiff(p: Path) -> S2Scene:
    with open_raster(p, "S2 image") as src:
        check_band_count(src.count, 13, p, "S2 image")
        check_readable(src, p, "S2 image")
        return S2Scene(
            path=p,
            kind="geotiff",
            band_paths=(str(p),),
            offsets=(0.0,) * 13,
            gain=1.0,
            grid=Grid.of(src),
            nodata=src.nodata,
            name=p.stem,
            block_rows=int(src.block_shapes[0][0]),
        )


class L1CMetadata(TypedDict):
    """What :func:`parse_l1c_metadata` reads from ``MTD_MSIL1C.xml``."""

    baseline: str | None
    offsets: tuple[float, ...]
    quantification: float
    nodata: float


def parse_l1c_metadata(xml_text: str | bytes, source: str = "MTD_MSIL1C.xml") -> L1CMetadata:
    """Read what :func:`open_s2` needs from an L1C product's ``MTD_MSIL1C.xml``.

    Args:
        xml_text: the file's content.
        source: its name, for messages.

    Returns:
        :class:`L1CMetadata`, a dict with ``baseline`` (str or None), ``offsets`` (13 floats, band order B1..B12 with
        B8A, from ``RADIO_ADD_OFFSET band_id="0".."12"``; zeros when absent), ``quantification``
        (float, default 10000) and ``nodata`` (the ``NODATA`` special value, default 0).

    Raises:
        DataError: unparsable XML, or a baseline >= 04.00 product without offsets.
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise DataError(f"cannot parse product metadata {source}: {exc}") from None
    baseline: str | None = None
    quant = 10000.0
    offsets: dict[int, float] = {}
    nodata = 0.0
    special: list[tuple[str, str]] = []
    text_pending: str | None = None
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        txt = (el.text or "").strip()
        if tag == "PROCESSING_BASELINE" and txt:
            baseline = txt
        elif tag == "QUANTIFICATION_VALUE" and txt:
            quant = float(txt)
        elif tag == "RADIO_ADD_OFFSET" and txt:
            offsets[int(el.attrib.get("band_id", len(offsets)))] = float(txt)
        elif tag == "SPECIAL_VALUE_TEXT":
            text_pending = txt
        elif tag == "SPECIAL_VALUE_INDEX" and text_pending is not None:
            special.append((text_pending, txt))
            text_pending = None
    for name, value in special:
        if name.upper() == "NODATA":
            nodata = float(value)
    if offsets and sorted(offsets) != list(range(13)):
        raise DataError(
            f"{source} lists RADIO_ADD_OFFSET for band ids {sorted(offsets)}, expected 0..12"
        )
    if baseline is not None and _baseline_number(baseline) >= 4.0 and not offsets:
        raise DataError(
            f"{source}: processing baseline {baseline} (>= 04.00) but no RADIO_ADD_OFFSET values"
        )
    return {
        "baseline": baseline,
        "offsets": tuple(offsets.get(i, 0.0) for i in range(13)),
        "quantification": quant,
        "nodata": nodata,
    }


def _baseline_number(baseline: str) -> float:
    try:
        return float(baseline)
    except ValueError:
        return 0.0


def _open_safe_dir(p: Path) -> S2Scene:
    mtd = p / "MTD_MSIL1C.xml"
    if not mtd.is_file():
        raise DataError(
            f"S2 input {p} is a folder without MTD_MSIL1C.xml: expected a Sentinel-2 L1C .SAFE "
            "product (Level-2A and other products are not supported)"
        )
    names = [q.relative_to(p).as_posix() for q in (p / "GRANULE").glob("*/IMG_DATA/*.jp2")]
    bands = _find_bands(names, p)
    meta = parse_l1c_metadata(mtd.read_bytes(), str(mtd))
    band_paths = tuple(str(p / bands[b]) for b in S2_BANDS)
    return _safe_scene(p, band_paths, meta, _product_name(p.name))


def _open_safe_zip(p: Path) -> S2Scene:
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            mtds = [n for n in names if n.endswith("MTD_MSIL1C.xml") and n.count("/") <= 1]
            if not mtds:
                raise DataError(
                    f"S2 input {p} is a zip without MTD_MSIL1C.xml: expected a zipped Sentinel-2 "
                    "L1C .SAFE product"
                )
            xml_bytes = zf.read(mtds[0])
    except zipfile.BadZipFile as exc:
        raise DataError(f"cannot read S2 product {p}: not a valid zip file ({exc})") from None
    prefix = mtds[0][: -len("MTD_MSIL1C.xml")]
    inner = [n[len(prefix) :] for n in names if n.startswith(prefix)]
    bands = _find_bands(inner, p)
    meta = parse_l1c_metadata(xml_bytes, f"{p}!{mtds[0]}")
    vsi = f"/vsizip/{p.resolve().as_posix()}/{prefix}"
    band_paths = tuple(vsi + bands[b] for b in S2_BANDS)
    name = _product_name(prefix.rstrip("/").rsplit("/", 1)[-1] or p.stem)
    return _safe_scene(p, band_paths, meta, name)


def _product_name(name: str) -> str:
    for suffix in (".zip", ".SAFE"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _find_bands(names: list[str], p: Path) -> dict[str, str]:
    """Map band names (``B1``..``B12``, ``B8A``) to JP2 paths relative to the product root."""
    found: dict[str, list[str]] = {}
    granules: set[str] = set()
    for n in names:
        m = _BAND_RE.search(n)
        if m:
            granules.add(m.group(1))
            found.setdefault(m.group(2).upper(), []).append(n)
    if len(granules) > 1:
        raise DataError(
            f"S2 product {p} has {len(granules)} granules; only single-tile L1C products "
            "(the format since December 2016) are supported"
        )
    missing = [b for b in S2_BANDS if _SAFE_BAND_SUFFIX[b] not in found]
    if missing:
        raise DataError(
            f"S2 product {p} lacks the JP2 band file(s) {', '.join(missing)} in GRANULE/*/IMG_DATA"
        )
    return {b: sorted(found[_SAFE_BAND_SUFFIX[b]])[0] for b in S2_BANDS}


def _upsampling_factor(band: Grid, grid: Grid) -> int | None:
    """The integer ``f`` such that each pixel of ``band`` is ``f x f`` pixels of ``grid`` (same
    CRS and origin, north-up, covering it), or None when ``band`` is not aligned so."""
    crs, ref, width, height = grid.crs, grid.transform, grid.width, grid.height
    t = band.transform
    f = t.a / ref.a
    fi = round(f)
    aligned = (
        band.crs == crs
        and fi >= 1
        and abs(f - fi) < 1e-6
        and abs(t.e / ref.e - fi) < 1e-6
        and abs(t.c - ref.c) < 1e-6 * abs(ref.a)
        and abs(t.f - ref.f) < 1e-6 * abs(ref.a)
        and t.b == 0
        and t.d == 0
        and band.width * fi >= width
        and band.height * fi >= height
    )
    return fi if aligned else None


def _safe_scene(p: Path, band_paths: tuple[str, ...], meta: L1CMetadata, name: str) -> S2Scene:
    grids: list[Grid] = []
    blocks = []
    for b, bp in zip(S2_BANDS, band_paths, strict=True):
        try:
            with rasterio.open(bp) as ds:
                if ds.count != 1:
                    raise DataError(f"S2 product {p}: band file {bp} has {ds.count} bands, expected 1")
                grids.append(Grid.of(ds))
                blocks.append(int(ds.block_shapes[0][0]))
        except RasterioIOError as exc:
            raise DataError(f"cannot read band {b} of S2 product {p}: {exc}") from None
    grid = grids[S2_BANDS.index("B2")]
    factors = []
    for b, g in zip(S2_BANDS, grids, strict=True):
        fi = _upsampling_factor(g, grid)
        if fi is None:
            raise DataError(
                f"S2 product {p}: band {b} is not on a grid aligned with B2's 10 m grid"
            )
        factors.append(fi)
    quant = meta["quantification"]
    return S2Scene(
        path=p,
        kind="safe",
        band_paths=band_paths,
        offsets=meta["offsets"],
        gain=REFLECTANCE_SCALE / quant if quant else 1.0,
        grid=grid,
        nodata=meta["nodata"],
        baseline=meta["baseline"],
        name=name,
        factors=tuple(factors),
        block_rows=blocks[S2_BANDS.index("B2")],
    )

"""Whole scenes: Sentinel readers, exact tiling, the threaded pipeline, COG output.

* :mod:`dsen2cr.scene.sentinel2` / :mod:`dsen2cr.scene.sentinel1` - the inputs (GeoTIFF,
  ``.SAFE``/``.zip``; S1 reprojected onto the S2 grid);
* :mod:`dsen2cr.scene.tiling` - exact tiling with a receptive-field halo;
* :mod:`dsen2cr.scene.inputs` - tile windows from files (block-aligned row chunks) or arrays;
* :mod:`dsen2cr.scene.pipeline` - reader threads -> network / mask -> writer thread;
* :mod:`dsen2cr.scene.writers` and :mod:`dsen2cr.scene.cog` - staging GeoTIFFs, COGs, previews;
* :mod:`dsen2cr.scene.predict` - :func:`predict` (``dsen2cr predict``) and :func:`predict_array`;
* :mod:`dsen2cr.scene.mask` - :func:`mask_scene` (``dsen2cr mask``), the same path without the
  network;
* :mod:`dsen2cr.scene.batch` - several scenes in one call.
"""

from dsen2cr.scene.batch import predict_many, predict_scenes
from dsen2cr.scene.mask import mask_scene
from dsen2cr.scene.predict import PredictOptions, predict, predict_array
from dsen2cr.scene.sentinel1 import S1Source, open_s1
from dsen2cr.scene.sentinel2 import S2Scene, open_s2
from dsen2cr.scene.tiling import Tile, plan_tiles

__all__ = [
    "PredictOptions",
    "S1Source",
    "S2Scene",
    "Tile",
    "mask_scene",
    "open_s1",
    "open_s2",
    "plan_tiles",
    "predict",
    "predict_array",
    "predict_many",
    "predict_scenes",
]

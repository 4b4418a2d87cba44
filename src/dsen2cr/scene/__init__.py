"""Whole scenes: Sentinel readers, exact tiling, the threaded pipeline, COG output.

* :mod:`dsen2cr.scene.sentinel2` / :mod:`dsen2cr.scene.sentinel1` - the inputs (GeoTIFF,
  ``.SAFE``/``.zip``; S1 reprojected onto the S2 grid);
* :mod:`dsen2cr.scene.tiling` - exact tiling with a receptive-field halo;
* :mod:`dsen2cr.scene.inputs` - tile windows from files (block-aligned row chunks) or arrays;
* :mod:`dsen2cr.scene.pipeline` - reader threads -> network / mask -> writer threads;
* :mod:`dsen2cr.scene.writers` - the sinks: COGs written block by block as tiles arrive
  (:mod:`dsen2cr.cog`), previews, arrays;
* :mod:`dsen2cr.scene.network` - :func:`load_network`: a network loaded once per process;
* :mod:`dsen2cr.scene.run` - :func:`run_scene`, the one scene run, its options and tags;
* :mod:`dsen2cr.scene.predict` - :func:`predict` (``dsen2cr predict``) and :func:`predict_array`;
* :mod:`dsen2cr.scene.mask` - :func:`mask_scene` (``dsen2cr mask``), the same run without the
  network;
* :mod:`dsen2cr.scene.batch` - batches of scenes over many processes (``torchrun``, ``srun``, job
  arrays), resumable, with :mod:`dsen2cr.scene.launch` (shares), :mod:`dsen2cr.scene.pairing`
  (S1 for each S2) and :mod:`dsen2cr.scene.manifest` (one JSON line per scene).
"""

from dsen2cr.scene.batch import BatchResult, plan_predict, predict_batch
from dsen2cr.scene.launch import Shard, parse_shard, shard_from_env
from dsen2cr.scene.manifest import Manifest, format_summary, summarize
from dsen2cr.scene.mask import mask_scene
from dsen2cr.scene.network import LoadedNetwork, load_network
from dsen2cr.scene.pairing import Pair, pair_by_footprint, read_pairs
from dsen2cr.scene.predict import PredictOptions, predict, predict_array
from dsen2cr.scene.run import SceneOutputs, run_scene
from dsen2cr.scene.sentinel1 import S1Source, open_s1
from dsen2cr.scene.sentinel2 import S2Scene, open_s2
from dsen2cr.scene.tiling import Tile, plan_tiles

__all__ = [
    "BatchResult",
    "LoadedNetwork",
    "Manifest",
    "Pair",
    "PredictOptions",
    "S1Source",
    "S2Scene",
    "SceneOutputs",
    "Shard",
    "Tile",
    "format_summary",
    "load_network",
    "mask_scene",
    "open_s1",
    "open_s2",
    "pair_by_footprint",
    "parse_shard",
    "plan_predict",
    "plan_tiles",
    "predict",
    "predict_array",
    "predict_batch",
    "read_pairs",
    "run_scene",
    "shard_from_env",
    "summarize",
]

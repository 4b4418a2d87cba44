"""Metrics of the paper (Table 1, Figs. 10-11) under declared protocols.

* :mod:`dsen2cr.metrics.protocols` - :class:`Protocol`: every convention that changes a value
  (``dsen2cr``, ``uncrtaints``, ``glf-cr``);
* :mod:`dsen2cr.metrics.core` - MAE, RMSE, PSNR, SAM, SSIM (target / reprod / recon) and per-band
  nRMSE of images and batches, on TOA reflectance;
* :mod:`dsen2cr.metrics.accumulator` - :class:`MetricAccumulator`, means over a data set, summed
  across processes;
* :mod:`dsen2cr.metrics.scene` - :class:`SceneScore`, the same metrics over the covered pixels of
  a large scene, accumulated strip by strip;
* :mod:`dsen2cr.metrics.table` - the paper's Table 1 (columns, published values, Markdown).
"""

from dsen2cr.metrics.accumulator import MetricAccumulator
from dsen2cr.metrics.core import (
    DATA_RANGE,
    METRIC_KEYS,
    RECON_KEYS,
    REPROD_KEYS,
    SSIM_K1,
    SSIM_K2,
    SSIM_SIGMA,
    SSIM_WINDOW,
    TARGET_KEYS,
    band_nrmse,
    batch_band_nrmse,
    batch_metrics,
    crop_box,
    image_metrics,
    protocol_view,
    ssim,
)
from dsen2cr.metrics.protocols import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    Protocol,
    describe_protocol,
    get_protocol,
    protocol_names,
)
from dsen2cr.metrics.scene import SceneScore
from dsen2cr.metrics.table import (
    PAPER_PROTOCOL,
    PAPER_TABLE1,
    TABLE1_COLUMNS,
    MixedProtocolsError,
    TableColumn,
    format_table1,
    row_protocol,
)

__all__ = [
    "DATA_RANGE",
    "DEFAULT_PROTOCOL",
    "METRIC_KEYS",
    "PAPER_PROTOCOL",
    "PAPER_TABLE1",
    "PROTOCOLS",
    "RECON_KEYS",
    "REPROD_KEYS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "TABLE1_COLUMNS",
    "TARGET_KEYS",
    "MetricAccumulator",
    "MixedProtocolsError",
    "Protocol",
    "SceneScore",
    "TableColumn",
    "band_nrmse",
    "batch_band_nrmse",
    "batch_metrics",
    "crop_box",
    "describe_protocol",
    "format_table1",
    "get_protocol",
    "image_metrics",
    "protocol_names",
    "protocol_view",
    "row_protocol",
    "ssim",
]

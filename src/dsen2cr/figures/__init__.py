"""Figures: composites for looking at Sentinel data, and the plots reports are made of.

* :mod:`dsen2cr.figures.panels` - captions, composites, image panels, figure files;
* :mod:`dsen2cr.figures.plots` - the plots of reports (nRMSE, example grids, training curves,
  large scenes).

Composites follow the paper's conventions (Fig. 1):

* optical: true-colour RGB from B4, B3, B2, linearly stretched; the default stretch maps
  reflectance [0, 0.3] (DN [0, 3000]) to [0, 1] and clips, the same fixed stretch for every image
  so that pictures compare; ``stretch="percentile"`` maps the 2nd-98th percentiles of the
  image's pixels with data instead.
* SAR: R = 0, G = VH, B = VV, each dB band clipped to its DSen2-CR range and scaled to [0, 1].
* mask: clear = black, cloud = white, shadow = blue.

Every image panel states its scale in one way, made here (:func:`rgb_caption`,
:func:`sar_caption`, :func:`grey_caption`, :func:`mask_caption`): the reflectance range of an
RGB stretch (its values, also for a percentile stretch), the dB range of each SAR channel, the
reflectance drawn black and white in a grey panel; :func:`image_panel` and :func:`rgb_panel`
draw a panel with its caption under it. Every plot has axis labels with units.

Matplotlib is used with the non-interactive Agg backend.
"""

from dsen2cr.figures.panels import (
    CAPTION_SIZE,
    PERCENTILES,
    RGB_STRETCH_DN,
    ImshowOptions,
    grey_caption,
    image_panel,
    mask_caption,
    mask_composite,
    new_figure,
    pick_examples,
    rgb_caption,
    rgb_composite,
    rgb_stretch,
    sar_caption,
    sar_composite,
    save_figure,
)
from dsen2cr.figures.plots import (
    ERROR_MASKED_COLOUR,
    LOSS_LABEL,
    NRMSE_LABEL,
    SCENE_60M_BANDS,
    ExampleImages,
    ScenePictures,
    SceneSpectraPanel,
    band_nrmse_plot,
    example_grid,
    rgb_panel,
    scene_60m_figure,
    scene_examples_figure,
    scene_spectra_figure,
    training_curves_plot,
)

__all__ = [
    "CAPTION_SIZE",
    "ERROR_MASKED_COLOUR",
    "LOSS_LABEL",
    "NRMSE_LABEL",
    "PERCENTILES",
    "RGB_STRETCH_DN",
    "SCENE_60M_BANDS",
    "ExampleImages",
    "ImshowOptions",
    "ScenePictures",
    "SceneSpectraPanel",
    "band_nrmse_plot",
    "example_grid",
    "grey_caption",
    "image_panel",
    "mask_caption",
    "mask_composite",
    "new_figure",
    "pick_examples",
    "rgb_caption",
    "rgb_composite",
    "rgb_panel",
    "rgb_stretch",
    "sar_caption",
    "sar_composite",
    "save_figure",
    "scene_60m_figure",
    "scene_examples_figure",
    "scene_spectra_figure",
    "training_curves_plot",
]

"""Networks and their weights.

* :mod:`dsen2cr.models.dsen2cr` - :class:`DSen2CR`, the network of paper Section 3.3;
* :mod:`dsen2cr.models.pix2pix` - the pix2pix baseline's U-Net generator, PatchGAN discriminator
  and :class:`Pix2PixPredictor` (the generator in DSen2-CR's scaled domain);
* :mod:`dsen2cr.models.keras` - the reader of the authors' Keras HDF5 files;
* :mod:`dsen2cr.models.weights` - the one loader of every weight format (:func:`load_weights`:
  native safetensors, Keras HDF5, training checkpoints, the latter through
  :func:`read_checkpoint`), the one writer (:func:`save_weights`) and :class:`RecordedNetwork`,
  the base of every network a weight file records;
* :mod:`dsen2cr.models.record` - :class:`WeightRecord` and the checks that turn a record into a
  network without trusting it.

Importing this package registers both networks with the loader.
"""

from dsen2cr.models.dsen2cr import DSen2CR, ResidualBlock
from dsen2cr.models.pix2pix import PatchGANDiscriminator, Pix2PixPredictor, UNetGenerator
from dsen2cr.models.weights import (
    KERAS_SUFFIXES,
    RecordedNetwork,
    WeightRecord,
    convert_weights,
    count_parameters,
    describe_weights,
    load_weights,
    network_digest,
    provenance,
    read_checkpoint,
    read_weights,
    save_weights,
    trained_on_synthetic,
)

__all__ = [
    "KERAS_SUFFIXES",
    "DSen2CR",
    "PatchGANDiscriminator",
    "Pix2PixPredictor",
    "RecordedNetwork",
    "ResidualBlock",
    "UNetGenerator",
    "WeightRecord",
    "convert_weights",
    "count_parameters",
    "describe_weights",
    "load_weights",
    "network_digest",
    "provenance",
    "read_checkpoint",
    "read_weights",
    "save_weights",
    "trained_on_synthetic",
]

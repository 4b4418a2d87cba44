"""``dsen2cr benchmark``: speed and model FLOP utilisation of DSen2-CR on the device at hand.

* :mod:`dsen2cr.benchmark.timing` - clocks, timed loops, device facts, the matmul peak;
* :mod:`dsen2cr.benchmark.model` - inference, the training step, bf16 error, the ladder;
* :mod:`dsen2cr.benchmark.scene` - end-to-end prediction of a generated scene;
* :mod:`dsen2cr.benchmark.io` - the scene path without the network, against GDAL's COG driver;
* :mod:`dsen2cr.benchmark.run` - :func:`run_benchmark`, the sections and their sizes
  (:class:`~dsen2cr.benchmark.timing.BenchmarkSizes`).
"""

from dsen2cr.benchmark.io import IdentityNetwork, bench_io
from dsen2cr.benchmark.model import (
    BF16_MAE_LIMIT,
    bench_bf16,
    bench_infer,
    bench_ladder,
    bench_train,
    ladder_rungs,
    make_train_batch,
)
from dsen2cr.benchmark.run import (
    DEFAULT_SECTIONS,
    SECTIONS,
    benchmark_sizes,
    run_benchmark,
)
from dsen2cr.benchmark.scene import bench_scene, make_inputs
from dsen2cr.benchmark.timing import (
    BenchmarkSizes,
    RunSettings,
    cpu_model,
    device_info,
    measure_peak,
)

__all__ = [
    "BF16_MAE_LIMIT",
    "DEFAULT_SECTIONS",
    "SECTIONS",
    "BenchmarkSizes",
    "IdentityNetwork",
    "RunSettings",
    "bench_bf16",
    "bench_infer",
    "bench_io",
    "bench_ladder",
    "bench_scene",
    "bench_train",
    "benchmark_sizes",
    "cpu_model",
    "device_info",
    "ladder_rungs",
    "make_inputs",
    "make_train_batch",
    "measure_peak",
    "run_benchmark",
]

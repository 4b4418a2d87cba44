"""Scene prediction: exact tiled prediction, georeferencing, S1 reprojection, nodata, COG output,
errors, the pipeline's batch order, compiled prediction."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from dsen2cr.cli import main
from dsen2cr.cloudmask import ShadowStats, cloud_shadow_mask, shadow_statistics
from dsen2cr.data.synthetic import make_scene
from dsen2cr.models import DSen2CR
from dsen2cr.performance import SpeedOptions
from dsen2cr.scaling import S2_BANDS, s1_to_scaled, s2_to_scaled
from dsen2cr.scene import PredictOptions, plan_tiles, predict, predict_array
from dsen2cr.scene.inputs import ArrayInputs, scene_shadow_statistics
from dsen2cr.scene.pipeline import Pipeline, TileBatch
from dsen2cr.scene.sentinel1 import S1Reader, open_s1
from dsen2cr.scene.sentinel2 import open_s2
from dsen2cr.scene.writers import prediction_to_dn
from tests.helpers import ORIGIN, REALDATA, UTM, needs_cuda, needs_files, tiny_model


def cpu(**kw) -> PredictOptions:
    """Options of a quiet CPU run."""
    return PredictOptions(device="cpu", progress=False, **kw)


# --------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest single-threaded (and do not fight other test processes)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def whole_prediction(model: DSen2CR, s2: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
    """The model run once on the whole scene (the reference of exact tiling)."""
    with torch.no_grad():
        x = s2_to_scaled(torch.from_numpy(s2.astype(np.float32)))[None]
        sar = None
        if s1 is not None:
            sar = torch.nan_to_num(s1_to_scaled(torch.from_numpy(s1.astype(np.float32))))[None]
        return model(x, sar)[0].numpy()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def scene():
    """A 700 x 900 synthetic scene (larger than a patch, not divisible by the tiles)."""
    return make_scene(700, 900, seed=3, cloud_cover=0.4)


@pytest.fixture(scope="module")
def small():
    return make_scene(150, 200, seed=5, cloud_cover=0.5)


# --------------------------------------------------------------------------- exact tiling
@pytest.mark.parametrize(("tile", "batch"), [(256, 1), (300, 3), (512, 2)])
def test_tiled_prediction_equals_whole_image(scene, tile, batch):
    model = tiny_model()
    s2, s1 = scene["s2_cloudy"], scene["s1"]
    res = predict_array(model, s2, s1, options=cpu(tile=tile, batch=batch), with_mask=True)
    ref = whole_prediction(model, s2, s1)
    assert res["prediction"].shape == (13, 700, 900)
    np.testing.assert_allclose(res["prediction"], ref, rtol=0, atol=1e-5)
    # the tiled mask (whole-scene shadow statistics, halo >= MASK_RADIUS) is the whole mask
    np.testing.assert_array_equal(res["mask"], cloud_shadow_mask(s2))
    assert res["valid"].all()
    # tiling must matter for a network that is not just the identity: halo-free crops differ
    crop = whole_prediction(model, s2[:, :256, :256], s1[:, :256, :256])
    assert np.abs(crop[:, 250:, 250:] - ref[:, 250:256, 250:256]).max() > 1e-4


def test_tiled_prediction_without_sar_and_bf16(small):
    model = tiny_model(sar=False)
    s2 = small["s2_cloudy"]
    ref = whole_prediction(model, s2, None)
    res = predict_array(model, s2, small["s1"], options=cpu(tile=64, batch=4))  # SAR ignored
    np.testing.assert_allclose(res["prediction"], ref, rtol=0, atol=1e-5)
    bf = predict_array(model, s2, None, options=cpu(tile=64, precision="bf16"))["prediction"]
    assert np.abs(bf - ref).mean() < 0.05 * np.abs(ref).mean()


def test_scene_statistics_match_cloudmask(scene):
    s2 = scene["s2_cloudy"]
    got = scene_shadow_statistics(ArrayInputs(s2, None), block=97)
    ref = shadow_statistics(s2)
    for f in ("csi_min", "csi_mean", "b2_min", "b2_mean"):
        assert math.isclose(getattr(got, f), getattr(ref, f), rel_tol=1e-14, abs_tol=0)


# --------------------------------------------------------------------------- files and COG
@pytest.mark.slow
@pytest.mark.parametrize("readers", [1, 3])
def test_predict_file_keeps_grid_and_writes_cog(tmp_path, scene, readers, write_raster):
    model = tiny_model()
    s2, s1 = scene["s2_cloudy"], scene["s1"]
    transform = from_origin(*ORIGIN, 10, 10)
    # a tiled input (blocks of 128 rows < tile + 2 halo): tiles straddle the reader's row chunks
    write_raster(tmp_path / "s2.tif", s2, block=128, compress="deflate")
    write_raster(tmp_path / "s1.tif", s1)
    out, mask = tmp_path / "out" / "pred.tif", tmp_path / "out" / "mask.tif"
    res = predict(tmp_path / "s2.tif", model, out, tmp_path / "s1.tif", mask_out=mask,
                  options=cpu(tile=256, batch=2, readers=readers))
    assert res["tiles"] == 12 and res["megapixels_per_s"] > 0 and res["nodata_fraction"] == 0
    assert res["readers"] == readers and res["cog_seconds"] > 0
    with rasterio.open(out) as dst:
        assert dst.crs == rasterio.crs.CRS.from_string(UTM)
        assert dst.transform == transform and (dst.height, dst.width) == (700, 900)
        assert dst.count == 13 and dst.dtypes[0] == "uint16" and dst.nodata == 0
        assert dst.descriptions == S2_BANDS
        assert dst.profile["tiled"] and dst.block_shapes[0] == (512, 512)
        assert dst.compression is not None and dst.compression.name.upper() == "DEFLATE"
        assert dst.overviews(1), "COG must carry overviews"
        assert dst.tags()["DSEN2CR_MODEL"] == json.dumps(model.config)
        assert "DSEN2CR_VERSION" in dst.tags()
        got = dst.read()
    with rasterio.open(out) as dst:  # the COG driver's layout marker
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    expected = prediction_to_dn(whole_prediction(model, s2, s1), np.ones((700, 900), bool))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    with rasterio.open(mask) as m:
        assert m.dtypes[0] == "int8" and m.nodata == -128 and m.transform == transform
        np.testing.assert_array_equal(m.read(1), cloud_shadow_mask(s2))
    assert leftovers(out.parent) == []


def test_s1_in_other_crs_is_reprojected_exactly(tmp_path, small, write_raster):
    """S1 in EPSG:4326 at ~14 x 22 m onto a 10 m UTM grid: bilinear, window-independent."""
    from rasterio.warp import transform as warp_transform
    from rasterio.warp import transform_bounds
    from scipy.ndimage import map_coordinates

    h, w = 150, 200
    s2_path = write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    west, south, east, north = transform_bounds(UTM, "EPSG:4326", ORIGIN[0], ORIGIN[1] - 10 * h,
                                                ORIGIN[0] + 10 * w, ORIGIN[1])
    res = 0.0002
    t1 = from_origin(west - 4 * res, north + 4 * res, res, res)
    w1 = int((east - west) / res) + 9
    h1 = int((north - south) / res) + 9
    rng = np.random.default_rng(0)
    s1 = np.stack([rng.normal(-12, 3, (h1, w1)), rng.normal(-19, 3, (h1, w1))]).astype(np.float32)
    s1_path = write_raster(tmp_path / "s1.tif", s1, crs="EPSG:4326", transform=t1)

    scene = open_s2(s2_path)
    src = open_s1(s1_path, scene)
    assert not src.aligned
    with S1Reader(src) as r:
        whole = r.read(rasterio.windows.Window(0, 0, w, h))
        tiled = np.empty_like(whole)
        for t in plan_tiles(h, w, 64, 0):
            rr, cc, th, tw = t.core
            tiled[:, rr : rr + th, cc : cc + tw] = r.read(t.rio_core())
    np.testing.assert_array_equal(tiled, whole)
    # independent reference: exact pixel-centre transformation + bilinear interpolation
    rows, cols = np.mgrid[0:h, 0:w]
    xs, ys = rasterio.transform.xy(scene.transform, rows.ravel(), cols.ravel())
    lon, lat = warp_transform(UTM, "EPSG:4326", xs, ys)
    ci, ri = ~t1 @ (np.asarray(lon), np.asarray(lat))
    for b in range(2):
        ref = map_coordinates(s1[b].astype(np.float64), [ri - 0.5, ci - 0.5], order=1)
        np.testing.assert_allclose(whole[b], ref.reshape(h, w), atol=1e-3)

    # end to end: the prediction equals the whole-image prediction with the reprojected S1
    model = tiny_model()
    out = tmp_path / "pred.tif"
    predict(s2_path, model, out, s1_path, options=cpu(tile=64))
    expected = prediction_to_dn(whole_prediction(model, small["s2_cloudy"], whole),
                                np.ones((h, w), bool))
    with rasterio.open(out) as dst:
        assert np.abs(dst.read().astype(int) - expected.astype(int)).max() <= 1


def test_partial_s1_overlap_gives_nodata(tmp_path, small, write_raster):
    h = 150
    s2_path = write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    # S1 covers only the left 80 columns (same CRS, 20 m pixels, shifted grid)
    s1 = np.full((2, h // 2, 40), -10.0, np.float32)
    s1_path = write_raster(tmp_path / "s1.tif", s1, transform=from_origin(*ORIGIN, 20, 20))
    out = tmp_path / "pred.tif"
    res = predict(s2_path, tiny_model(), out, s1_path, options=cpu(tile=64))
    with rasterio.open(out) as dst:
        pred = dst.read()
    nodata = (pred == 0).all(axis=0)
    assert nodata[:, 85:].all()
    assert not nodata[:, :75].any() and (pred[:, :, :75] >= 1).all()
    assert 0.55 < res["nodata_fraction"] < 0.62


def test_nodata_pixels(tmp_path, small, write_raster):
    s2 = small["s2_cloudy"].copy()
    h, w = s2.shape[1:]
    rows, cols = np.mgrid[0:h, 0:w]
    hole = cols + rows < 90  # the no-data corner of an S2 tile
    s2[:, hole] = 0
    s2_path = write_raster(tmp_path / "s2.tif", s2)
    s1_path = write_raster(tmp_path / "s1.tif", small["s1"])
    out, mask = tmp_path / "pred.tif", tmp_path / "mask.tif"
    predict(s2_path, tiny_model(), out, s1_path, mask_out=mask, options=cpu(tile=64))
    with rasterio.open(out) as dst, rasterio.open(mask) as m:
        pred, mk = dst.read(), m.read(1)
    assert (pred[:, hole] == 0).all() and (pred[:, ~hole] >= 1).all()
    assert (mk[hole] == -128).all() and np.isin(mk[~hole], (-1, 0, 1)).all()
    # mask statistics over valid pixels only; tiles reproduce the whole-scene mask exactly
    valid = ~hole
    sub = s2[:, valid][:, None, :]  # (13, 1, N) of valid pixels
    stats = shadow_statistics(sub)
    ref = cloud_shadow_mask(s2, shadow_stats=ShadowStats(**vars(stats)))
    np.testing.assert_array_equal(mk[valid], ref[valid])


def test_interrupted_run_leaves_no_output(tmp_path, small, write_raster):
    class Failing(DSen2CR):
        calls = 0

        def forward(self, optical, sar=None):
            Failing.calls += 1
            if Failing.calls == 3:
                raise KeyboardInterrupt
            return super().forward(optical, sar)

    torch.manual_seed(0)
    model = Failing(features=8, blocks=3).eval()
    s2_path = write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    s1_path = write_raster(tmp_path / "s1.tif", small["s1"])
    out_dir = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict(s2_path, model, out_dir / "pred.tif", s1_path, mask_out=out_dir / "mask.tif",
                options=cpu(tile=32))
    assert Failing.calls == 3
    assert not out_dir.exists()  # the folder it created is gone too: no debris


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def cli_inputs(tmp_path, small, write_raster):
    write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    write_raster(tmp_path / "s1.tif", small["s1"])
    tiny_model().save_pretrained(tmp_path / "w.safetensors")
    return tmp_path


def test_cli_end_to_end(cli_inputs, capsys):
    d = cli_inputs
    rc = main(["predict", "--s2", str(d / "s2.tif"), "--s1", str(d / "s1.tif"), "--weights",
               str(d / "w.safetensors"), "--out", str(d / "o" / "pred.tif"), "--mask-out",
               str(d / "o" / "mask.tif"), "--preview", str(d / "o" / "preview.png"), "--tile",
               "64", "--batch", "2", "--device", "cpu", "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tiles"] == 12 and summary["device"] == "cpu"
    assert 0 < summary["cloud_fraction"] < 1
    assert sorted(p.name for p in (d / "o").iterdir()) == ["mask.tif", "pred.tif", "preview.png"]
    with rasterio.open(d / "o" / "pred.tif") as a, rasterio.open(d / "s2.tif") as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)


def test_cli_compression_option(cli_inputs):
    d = cli_inputs
    args = ["predict", "--s2", str(d / "s2.tif"), "--s1", str(d / "s1.tif"), "--weights",
            str(d / "w.safetensors"), "--tile", "128", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(d / "z.tif"), "--compress", "zstd"]) == 0
    assert main([*args, "--out", str(d / "n.tif"), "--compress", "none"]) == 0
    with rasterio.open(d / "z.tif") as z, rasterio.open(d / "n.tif") as n:
        assert z.compression is not None and z.compression.name.upper() == "ZSTD"
        assert n.compression is None
        np.testing.assert_array_equal(z.read(), n.read())


def test_cli_sar_free_weights_ignore_s1(cli_inputs, capsys, caplog):
    d = cli_inputs
    tiny_model(sar=False).save_pretrained(d / "nosar.safetensors")
    args = ["predict", "--s2", str(d / "s2.tif"), "--weights", str(d / "nosar.safetensors"),
            "--tile", "128", "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(d / "a.tif")]) == 0
    assert main([*args, "--s1", str(d / "s1.tif"), "--out", str(d / "b.tif")]) == 0
    assert "do not use SAR" in caplog.text
    with rasterio.open(d / "a.tif") as a, rasterio.open(d / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_s1_linear_matches_db(cli_inputs, small, write_raster):
    d = cli_inputs
    write_raster(d / "s1_lin.tif", (10.0 ** (small["s1"] / 10.0)).astype(np.float32))
    model = tiny_model()
    predict(d / "s2.tif", model, d / "db.tif", d / "s1.tif", options=cpu(tile=128))
    predict(d / "s2.tif", model, d / "lin.tif", d / "s1_lin.tif",
            options=cpu(tile=128, s1_linear=True))
    with rasterio.open(d / "db.tif") as a, rasterio.open(d / "lin.tif") as b:
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 1


def _bad(d: Path, name: str, write_raster) -> list[str]:
    s2, s1, w = d / "s2.tif", d / "s1.tif", d / "w.safetensors"
    if name == "s2_bands":
        s2 = write_raster(d / "s2_12.tif", np.ones((12, 40, 40), np.uint16))
    elif name == "s1_bands":
        s1 = write_raster(d / "s1_3.tif", np.ones((3, 40, 40), np.float32))
    elif name == "missing":
        s2 = d / "nope.tif"
    elif name == "corrupt":
        s2 = d / "corrupt.tif"
        s2.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    elif name == "weights":
        w = d / "bad.safetensors"
        w.write_bytes(b"not a weight file")
    elif name == "no_overlap":
        s1 = write_raster(d / "far.tif", np.ones((2, 40, 40), np.float32),
                       transform=from_origin(ORIGIN[0] + 1e5, ORIGIN[1], 10, 10))
    return ["predict", "--s2", str(s2), "--s1", str(s1), "--weights", str(w), "--device", "cpu",
            "--quiet", "--out", str(d / "o" / "pred.tif"), "--mask-out", str(d / "o" / "m.tif")]


@pytest.mark.parametrize("name", ["s2_bands", "s1_bands", "missing", "corrupt", "weights",
                                  "no_overlap"])
def test_cli_bad_inputs_fail_cleanly(cli_inputs, capsys, name, write_raster):
    rc = main(_bad(cli_inputs, name, write_raster))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("dsen2cr predict: error:")
    assert not (cli_inputs / "o").exists() or list((cli_inputs / "o").iterdir()) == []
    expected = {"s2_bands": "13", "s1_bands": "expected 2", "missing": "not found",
                "corrupt": "corrupt.tif", "weights": "bad.safetensors", "no_overlap": "overlap"}
    assert expected[name] in err


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
@needs_files(REALDATA / "sen1floods11" / "Spain_7370579_S2Hand.tif")
def test_real_sen1floods11_scene(tmp_path):
    d = REALDATA / "sen1floods11"
    s2_path, s1_path = d / "Spain_7370579_S2Hand.tif", d / "Spain_7370579_S1Hand.tif"
    out = tmp_path / "pred.tif"
    res = predict(s2_path, tiny_model(), out, s1_path, mask_out=tmp_path / "m.tif",
                  options=cpu(tile=256))
    with rasterio.open(out) as a, rasterio.open(s2_path) as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
        s2 = b.read()
    assert res["nodata_fraction"] == pytest.approx(float((s2 == 0).all(axis=0).mean()))


# --------------------------------------------------------------------------- speed settings
def test_pipeline_queues_the_next_batch_before_waiting(small):
    """Batch k is launched before batch k - 1's results are collected (one batch in flight)."""
    s2 = small["s2_cloudy"]
    inputs = ArrayInputs(s2, None)
    tiles = plan_tiles(*s2.shape[1:], 64, 8)
    batches = [tiles[i : i + 4] for i in range(0, len(tiles), 4)]
    events: list[tuple[str, int]] = []

    def launch(batch: TileBatch):
        k = len([e for e in events if e[0] == "launch"])
        events.append(("launch", k))

        def finish():
            events.append(("finish", k))  # the sink only looks at the order of the tiles
            return [SimpleNamespace(tile=t, mask_from=None) for t in batch.tiles]

        return finish

    written = []
    Pipeline(workers=1).run(batches, inputs, launch, lambda r: written.append(r.tile), lambda n: None)
    n = len(batches)
    expected = [("launch", 0)]
    for k in range(1, n):
        expected += [("launch", k), ("finish", k - 1)]
    assert events == [*expected, ("finish", n - 1)]
    assert written == tiles


@pytest.mark.slow
def test_compiled_prediction_pads_the_last_batch(small):
    """torch.compile + channels_last give the plain result; the short last batch is padded, so
    only one graph is compiled."""
    import torch._dynamo

    s2, s1 = small["s2_cloudy"], small["s1"]
    ref = whole_prediction(tiny_model(), s2, s1)
    plain = predict_array(tiny_model(), s2, s1,
                          options=cpu(tile=64, batch=5, speed=SpeedOptions(channels_last=False)))
    np.testing.assert_allclose(plain["prediction"], ref, rtol=0, atol=1e-5)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = tiny_model()
    res = predict_array(model, s2, s1, options=cpu(tile=64, batch=5, speed=SpeedOptions(compile=True)))
    # 12 tiles: 5 + 5 + 2
    assert model.head.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(res["prediction"], ref, rtol=0, atol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


@needs_cuda
def test_cuda_prediction_matches_cpu(scene):
    s2, s1 = scene["s2_cloudy"], scene["s1"]
    """fp32 on CUDA is IEEE float32 (TF32 off), so it matches the CPU up to float round-off;
    tf32 (the CUDA default) and bf16 stay within the errors the README states."""
    on_cpu = predict_array(tiny_model(), s2, s1, options=cpu(tile=256, batch=3), with_mask=True)
    cuda = PredictOptions(device="cuda", precision="fp32", tile=256, batch=3)
    gpu = predict_array(tiny_model(), s2, s1, options=cuda, with_mask=True)
    np.testing.assert_allclose(gpu["prediction"], on_cpu["prediction"], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(gpu["mask"], on_cpu["mask"])
    tf = predict_array(tiny_model(), s2, s1, options=replace(cuda, precision=None))  # tf32
    assert np.abs(tf["prediction"] - on_cpu["prediction"]).mean() * 0.2 < 1e-3  # reflectance
    bf = predict_array(tiny_model(), s2, s1, options=replace(cuda, precision="bf16"))
    assert np.abs(bf["prediction"] - on_cpu["prediction"]).mean() * 0.2 < 1e-2  # reflectance


# --------------------------------------------------------------------------- one scene run
def read_levels(path: Path) -> list[np.ndarray]:
    """Every level of a COG, full resolution first."""
    with rasterio.open(path) as ds:
        shapes = [(ds.count, ds.height, ds.width)]
        shapes += [(ds.count, -(-ds.height // f), -(-ds.width // f)) for f in ds.overviews(1)]
        return [ds.read(out_shape=s) for s in shapes]


@pytest.mark.slow
def test_threads_and_stripes_do_not_change_a_byte(tmp_path, scene, write_raster, monkeypatch):
    """Any number of threads, and a scene cut into stripes (as scenes wider than STRIPE_MAX
    are), give byte-identical files: the layout is fixed, only the work is spread."""
    import dsen2cr.scene.tiling as tiling

    model = tiny_model()
    write_raster(tmp_path / "s2.tif", scene["s2_cloudy"], block=128, compress="deflate")
    write_raster(tmp_path / "s1.tif", scene["s1"], resolution=20.0)  # warped
    files = {}
    for name, threads, stripe in (("one", 1, None), ("three", 3, None), ("striped", 2, 256)):
        if stripe:
            monkeypatch.setattr(tiling, "STRIPE_MAX", stripe)  # 900 columns: 4 stripes of 256
        out, mask = tmp_path / f"{name}.tif", tmp_path / f"{name}_mask.tif"
        res = predict(tmp_path / "s2.tif", model, out, tmp_path / "s1.tif", mask_out=mask,
                      options=cpu(tile=128, threads=threads))
        assert res["threads"] == threads and res["workers"] == threads
        assert set(res["stages"]) >= {"statistics", "decode", "warp", "network", "mask",
                                      "convert", "encode", "layout"}  # fmt: skip
        files[name] = (out.read_bytes(), mask.read_bytes())
    assert files["one"] == files["three"] == files["striped"]
    assert max(t.stripe for t in tiling.plan_tiles(700, 900, 128, 34)) == 3
    levels = read_levels(tmp_path / "one.tif")
    assert len(levels) == 2 and levels[1].shape == (13, 350, 450)


def test_network_is_read_hashed_and_prepared_once_per_process(tmp_path, small, write_raster, monkeypatch):
    import dsen2cr.scene.network as network

    calls = {"load": 0, "digest": 0}

    def counting(fn, key):
        def wrapped(*a, **kw):
            calls[key] += 1
            return fn(*a, **kw)

        return wrapped

    monkeypatch.setattr(network, "load_weights", counting(network.load_weights, "load"))
    monkeypatch.setattr(network, "network_digest", counting(network.network_digest, "digest"))
    weights = tiny_model().save_pretrained(tmp_path / "w.safetensors")
    write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    write_raster(tmp_path / "s1.tif", small["s1"])
    for i in range(3):
        predict(tmp_path / "s2.tif", weights, tmp_path / f"p{i}.tif", tmp_path / "s1.tif",
                options=cpu(tile=64))  # fmt: skip
    assert calls == {"load": 1, "digest": 1}
    loaded = network.load_network(weights, "cpu")
    assert loaded.uses_sar and loaded.halo == 2 * 3 + 2 and loaded.name == "w.safetensors"
    assert network.load_network(loaded, "cpu") is loaded and calls["load"] == 1
    with rasterio.open(tmp_path / "p0.tif") as a, rasterio.open(tmp_path / "p2.tif") as b:
        assert a.tags()["DSEN2CR_WEIGHTS_SHA256"] == b.tags()["DSEN2CR_WEIGHTS_SHA256"] == loaded.digest
        assert a.tags()["DSEN2CR_PRECISION"] == "fp32"
        assert json.loads(a.tags()["DSEN2CR_OPTIONS"])["precision"] == "fp32"


def test_identity_network_gives_back_the_input(tmp_path, small, write_raster):
    """The io benchmark's identity network exercises every stage but the network: the output is
    the input as the output's DN convention keeps it (clipped to [1, 10000])."""
    from dsen2cr.benchmark.io import IdentityNetwork

    s2 = small["s2_cloudy"]
    write_raster(tmp_path / "s2.tif", s2)
    write_raster(tmp_path / "s1.tif", small["s1"])
    res = predict(tmp_path / "s2.tif", IdentityNetwork(), tmp_path / "o.tif", tmp_path / "s1.tif",
                  options=cpu(tile=64))  # fmt: skip
    assert res["halo"] == 34
    with rasterio.open(tmp_path / "o.tif") as ds:
        np.testing.assert_array_equal(ds.read(), np.clip(s2, 1, 10000))


def test_dn_made_on_the_device_gives_the_same_file(tmp_path, small, write_raster, monkeypatch):
    """The CUDA path's DN conversion on the device (here forced on the CPU) writes the same
    bytes as the conversion in the writer threads."""
    import dsen2cr.scene.pipeline as pipeline

    write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    write_raster(tmp_path / "s1.tif", small["s1"])
    model = tiny_model()
    kw = {"options": cpu(tile=64, batch=3)}
    predict(tmp_path / "s2.tif", model, tmp_path / "host.tif", tmp_path / "s1.tif", **kw)
    made = []
    original = pipeline.TileComputer.__init__

    def on_device(self, *a, **k):
        original(self, *a, **k)
        self.dn_on_device = bool(k.get("dn"))
        made.append(self.dn_on_device)

    monkeypatch.setattr(pipeline.TileComputer, "__init__", on_device)
    predict(tmp_path / "s2.tif", model, tmp_path / "device.tif", tmp_path / "s1.tif", **kw)
    assert made == [True]
    assert (tmp_path / "host.tif").read_bytes() == (tmp_path / "device.tif").read_bytes()


@needs_cuda
def test_cuda_file_prediction_matches_cpu(tmp_path, small, write_raster):
    """On CUDA (fp32), DN are made on the device: the same as the CPU's up to the float
    round-off of the convolutions (a 1 DN rounding step in rare pixels)."""
    from dsen2cr.scaling import scaled_to_dn

    x = torch.rand(2, 13, 64, 64) * 3
    np.testing.assert_array_equal(scaled_to_dn(x.cuda()).cpu().numpy(), scaled_to_dn(x.numpy()))
    write_raster(tmp_path / "s2.tif", small["s2_cloudy"])
    write_raster(tmp_path / "s1.tif", small["s1"])
    out = {}
    for dev in ("cpu", "cuda"):
        predict(tmp_path / "s2.tif", tiny_model(), tmp_path / f"{dev}.tif", tmp_path / "s1.tif",
                options=PredictOptions(device=dev, precision="fp32", tile=64, progress=False))
        with rasterio.open(tmp_path / f"{dev}.tif") as ds:
            out[dev] = ds.read().astype(int)
    assert np.abs(out["cpu"] - out["cuda"]).max() <= 1


# --------------------------------------------------------------------------- keep clear pixels
def check_keep_clear(tmp_path: Path, s2: Path, s1: Path, margin: int) -> dict:
    """Predict plain and with keep_clear: clear valid pixels are the input, bit for bit; every
    other pixel is the plain prediction; the 14th band says which."""
    from dsen2cr.scene.writers import PROVENANCE

    model = tiny_model()
    opts = cpu(tile=96)
    predict(s2, model, tmp_path / "plain.tif", s1, mask_out=tmp_path / "mask.tif", options=opts)
    keep = replace(opts, keep_clear=True, clear_margin=margin)
    predict(s2, model, tmp_path / "keep.tif", s1, options=keep)
    with rasterio.open(s2) as a, rasterio.open(tmp_path / "plain.tif") as b, \
         rasterio.open(tmp_path / "keep.tif") as c, rasterio.open(tmp_path / "mask.tif") as m:  # fmt: skip
        inp, plain, kept, mask = a.read(), b.read(), c.read(), m.read(1)
        assert c.count == 14 and c.descriptions[13].startswith("provenance")
        tags = json.loads(c.tags()["DSEN2CR_KEEP_CLEAR"])
        level = c.read(14, out_shape=(c.height // 2, c.width // 2)) if c.overviews(1) else None
    assert tags["margin"] == margin and tags["provenance_band"] == 14
    prov = kept[13]
    clear = mask == 0
    if margin:
        from scipy import ndimage

        grow = np.ones((2 * margin + 1,) * 2, bool)
        cloud = ndimage.binary_dilation(mask == 1, grow)
        shadow = ndimage.binary_dilation(mask == -1, grow)
        clear = ~cloud & ~shadow & (mask != -128)
    else:
        cloud, shadow = mask == 1, mask == -1
    valid = mask != -128
    np.testing.assert_array_equal(prov == PROVENANCE["input"], clear & valid)
    np.testing.assert_array_equal(kept[:13][:, prov == 1], inp[:, prov == 1].astype(np.uint16))
    under = (prov == PROVENANCE["cloud"]) | (prov == PROVENANCE["shadow"])
    np.testing.assert_array_equal(kept[:13][:, under], plain[:, under])
    np.testing.assert_array_equal(prov == PROVENANCE["cloud"], cloud & valid & (plain != 0).any(0))
    assert (kept[:13][:, prov == 0] == 0).all()
    if level is not None:
        assert set(np.unique(level)) <= {0, 1, 2, 3}
    return {"kept": float((prov == 1).mean()), "under": float(under.mean())}


@pytest.mark.parametrize("margin", [0, 2])
def test_keep_clear_keeps_the_input_bit_for_bit(tmp_path, scene, write_raster, margin):
    write_raster(tmp_path / "s2.tif", scene["s2_cloudy"])
    write_raster(tmp_path / "s1.tif", scene["s1"])
    share = check_keep_clear(tmp_path, tmp_path / "s2.tif", tmp_path / "s1.tif", margin)
    assert 0.1 < share["kept"] < 0.9 and share["under"] > 0.1  # both kinds of pixels occur


@needs_files(REALDATA / "sen12mscr_georef" / "ROIs1868_summer_s2_cloudy_19_p30.tif")
def test_keep_clear_on_a_real_patch(tmp_path):
    """A real SEN12MS-CR patch with scattered cumulus and their shadows."""
    g = REALDATA / "sen12mscr_georef"
    share = check_keep_clear(tmp_path, g / "ROIs1868_summer_s2_cloudy_19_p30.tif",
                             g / "ROIs1868_summer_s1_19_p30.tif", 0)  # fmt: skip
    assert share["kept"] > 0.2 and share["under"] > 0.05


# --------------------------------------------------------------------------- weight provenance
def test_synthetic_weights_on_real_imagery_warn_once(tmp_path, small, write_raster, caplog, capsys):
    import logging

    import dsen2cr.scene.run as run
    from dsen2cr.cli import main

    run._WARNED.clear()
    weights = tiny_model().save_pretrained(
        tmp_path / "w.safetensors", training_info={"trained_on": {"kind": "synthetic"}, "loss": "carl"}
    )
    write_raster(tmp_path / "real.tif", small["s2_cloudy"])
    write_raster(tmp_path / "s1.tif", small["s1"])
    # what synth-data marks its patches with
    write_raster(tmp_path / "synthetic.tif", small["s2_cloudy"], tags={"DSEN2CR_SYNTHETIC": "1"})
    with caplog.at_level(logging.WARNING, logger="dsen2cr"):
        predict(tmp_path / "synthetic.tif", weights, tmp_path / "a.tif", tmp_path / "s1.tif",
                options=cpu(tile=64))  # fmt: skip
        assert "trained on synthetic data" not in caplog.text  # testing on its own kind of data
        for name in ("b", "c"):
            predict(tmp_path / "real.tif", weights, tmp_path / f"{name}.tif", tmp_path / "s1.tif",
                    options=cpu(tile=64))  # fmt: skip
    assert caplog.text.count("trained on synthetic data") == 1  # once per process and network
    assert main(["info", str(weights)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["provenance"].startswith("trained on synthetic data") and "CARL" in info["provenance"]
    assert "Sentinel-1 + Sentinel-2" in info["provenance"]

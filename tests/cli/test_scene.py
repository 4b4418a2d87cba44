"""``dsen2cr predict`` and ``dsen2cr mask`` (:mod:`dsen2cr.cli.scene`): flags -> Python call."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dsen2cr.errors import DataError, InputNotFoundError, OptionError, OutputExistsError
from dsen2cr.performance import SpeedOptions
from dsen2cr.scene import PredictOptions, Shard
from tests.cli.conftest import Invoke, Record, Recorder, UsageError, one_error_line

ONE = ["predict", "--s2", "a.tif", "--s1", "b.tif", "--weights", "w.safetensors", "--out", "o.tif"]


@pytest.fixture
def library(record: Record) -> dict[str, Recorder]:
    """The three functions ``dsen2cr predict`` calls; the plan says: one scene."""
    return {
        "plan_predict": record("dsen2cr.scene", "plan_predict", (Path("a.tif"), Path("b.tif"))),
        "predict": record("dsen2cr.scene", "predict", {"out": "o.tif", "tiles": 4}),
        "predict_batch": record("dsen2cr.scene", "predict_batch",
                                SimpleNamespace(records=[{"s2": "a.tif", "status": "done"},
                                                         {"s2": "c.tif", "status": "skipped"}],
                                                ok=True)),
    }  # fmt: skip


# --------------------------------------------------------------------------- predict
def test_predict_one_scene_gets_the_library_defaults(invoke: Invoke,
                                                     library: dict[str, Recorder]) -> None:  # fmt: skip
    r = invoke(ONE)
    assert (r.status, r.out, r.err) == (0, '{"out": "o.tif", "tiles": 4}\n', "")
    plan = library["plan_predict"].call
    assert plan.args == (["a.tif"], ["b.tif"], Path("o.tif"))
    assert plan.kwargs == {"weights": Path("w.safetensors"), "mask_out": None, "preview": None,
                           "pairs": None, "shard": None, "overwrite": False}  # fmt: skip
    call = library["predict"].call
    assert call.args == (Path("a.tif"), Path("w.safetensors"), Path("o.tif"), Path("b.tif"))
    assert call.kwargs == {"mask_out": None, "preview": None, "options": PredictOptions(),
                           "overwrite": False}  # fmt: skip
    assert library["predict_batch"].calls == []


def test_predict_every_flag_reaches_the_batch(invoke: Invoke, library: dict[str, Recorder]) -> None:
    library["plan_predict"].result = None  # a batch
    r = invoke(["predict", "--s2", "a.tif", "c.tif", "--weights", "w.ckpt", "--out", "outdir",
                "--mask-out", "masks", "--preview", "previews", "--manifest", "m.jsonl",
                "--shard", "1/3", "--batch", "2", "--precision", "bf16", "--s1-linear",
                "--keep-clear", "--clear-margin", "4", "--tile", "256", "--device", "cpu",
                "--threshold", "0.3", "--compress", "zstd", "--no-band-check", "--threads", "2",
                "--quiet", "--compile", "--readers", "3", "--no-channels-last", "--overwrite"])  # fmt: skip
    assert r.status == 0
    assert [json.loads(x) for x in r.out.splitlines()] == [{"s2": "a.tif", "status": "done"},
                                                           {"s2": "c.tif", "status": "skipped"}]  # fmt: skip
    shard = Shard(1, 3, None, "--shard")
    assert library["plan_predict"].call.kwargs["shard"] == shard
    call = library["predict_batch"].call
    assert call.args == (["a.tif", "c.tif"], Path("w.ckpt"), Path("outdir"), None)
    assert call.kwargs == {
        "pairs": None, "mask_dir": Path("masks"), "preview_dir": Path("previews"),
        "options": PredictOptions(
            tile=256, batch=2, device="cpu", precision="bf16", threshold=0.3, compress="ZSTD",
            s1_linear=True, readers=3, threads=2, progress=False, band_check=False,
            keep_clear=True, clear_margin=4, speed=SpeedOptions(channels_last=False, compile=True),
        ),
        "overwrite": True, "manifest": Path("m.jsonl"), "shard": shard, "quiet": True,
    }  # fmt: skip
    assert library["predict"].calls == []


def test_predict_pairs_batch_exits_1_when_a_scene_failed(invoke: Invoke,
                                                         library: dict[str, Recorder]) -> None:  # fmt: skip
    library["plan_predict"].result = None
    library["predict_batch"].result = SimpleNamespace(records=[{"status": "failed"}], ok=False)
    r = invoke(["predict", "--pairs", "p.csv", "--weights", "w", "--out", "outdir"])
    assert (r.status, r.out) == (1, '{"status": "failed"}\n')
    assert library["plan_predict"].call.args == (None, None, Path("outdir"))
    assert library["plan_predict"].call.kwargs["pairs"] == Path("p.csv")
    call = library["predict_batch"].call
    assert call.args == (None, Path("w"), Path("outdir"), None)
    assert call.kwargs["pairs"] == Path("p.csv")
    assert call.kwargs["options"] == PredictOptions()


@pytest.mark.parametrize(("argv", "line"), [
    (["predict", "--s2", "a.tif"], "the following arguments are required: --weights, --out"),
    (["predict", "--weights", "w", "--out", "o.tif"],
     "the following arguments are required: --s2 (or --pairs)"),
    ([*ONE, "--pairs", "p.csv"], "give --s2/--s1 or --pairs, not both"),
    ([*ONE, "--compress", "jpeg"],
     "argument --compress: invalid choice: 'JPEG' (choose from 'DEFLATE', 'ZSTD', 'LZW', 'NONE')"),
    ([*ONE, "--precision", "fp16"],
     "argument --precision: invalid choice: 'fp16' (choose from 'fp32', 'tf32', 'bf16')"),
    ([*ONE, "--tile", "big"], "argument --tile: invalid int value: 'big'"),
    ([*ONE, "--threshold"], "argument --threshold: expected one argument"),
])  # fmt: skip
def test_predict_usage_errors(usage_error: UsageError, library: dict[str, Recorder],
                              argv: list[str], line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr predict: error: {line}"
    assert library["plan_predict"].calls == [] and library["predict"].calls == []


@pytest.mark.parametrize(("flags", "message"), [
    (["--tile", "8"], "--tile must be an integer >= 16, got 8"),
    (["--batch", "0"], "--batch must be an integer >= 1, got 0"),
    (["--clear-margin", "28"], "--clear-margin must be an integer from 0 to 27, got 28"),
    (["--threshold", "nan"], "--threshold must be a finite number, got nan"),
    (["--shard", "3/3"], "--shard must be I/N with 0 <= I < N, e.g. 0/4, got '3/3'"),
])  # fmt: skip
def test_predict_option_errors_of_the_library_name_flags(invoke: Invoke, library: dict[str, Recorder],
                                                         flags: list[str], message: str) -> None:  # fmt: skip
    one_error_line(invoke([*ONE, *flags]), "predict", message)
    assert library["plan_predict"].calls == [] and library["predict"].calls == []


@pytest.mark.parametrize(("where", "error", "message"), [
    ("plan_predict", DataError("this model needs the Sentinel-1 image ({s1})", s1=None),
     "this model needs the Sentinel-1 image (--s1)"),
    ("plan_predict", OptionError("out", "must be a folder for a batch of scenes, not o.tif"),
     "--out must be a folder for a batch of scenes, not o.tif"),
    ("plan_predict", OutputExistsError("mask_out", "m.tif"),
     "--mask-out m.tif exists: add --overwrite to replace it"),
    ("plan_predict", OptionError("s2", "give the S2 inputs or a pairs file (one of them)"),
     "--s2 give the S2 inputs or a pairs file (one of them)"),
    ("predict", DataError("a.tif: B10 is brighter than B3 (pass {band_check} if they are in the "
                          "right order)", band_check=False),
     "a.tif: B10 is brighter than B3 (pass --no-band-check if they are in the right order)"),
    ("predict", OSError(28, "No space left on device", "o.tif"), "No space left on device: o.tif"),
])  # fmt: skip
def test_predict_library_errors_are_one_line_naming_flags(
    invoke: Invoke, library: dict[str, Recorder], where: str, error: Exception, message: str
) -> None:
    library[where].error = error
    one_error_line(invoke(ONE), "predict", message)


def test_predict_summary_needs_no_other_flag(record: Record,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from dsen2cr.cli import main

    summarize = record("dsen2cr.scene", "summarize", SimpleNamespace(complete=False))
    fmt = record("dsen2cr.scene", "format_summary", "2 done, 1 missing")
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--summary", "out/manifest.jsonl"])
    assert exc.value.code == 1  # not complete
    assert capsys.readouterr().out == "2 done, 1 missing\n"
    assert summarize.call.args == (Path("out/manifest.jsonl"),)
    assert fmt.call.args == (SimpleNamespace(complete=False),)
    summarize.result = SimpleNamespace(complete=True)
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--summary", "m.jsonl", "--tile", "64"])
    assert exc.value.code == 0


def test_predict_summary_error_is_one_line(record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    from dsen2cr.cli import main

    record("dsen2cr.scene", "summarize",
           error=InputNotFoundError("manifest file not found: m.jsonl"))  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--summary", "m.jsonl"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == "dsen2cr predict: error: manifest file not found: m.jsonl\n"


# --------------------------------------------------------------------------- mask
@pytest.fixture
def mask_scene(record: Record) -> Recorder:
    return record("dsen2cr.scene", "mask_scene", {"out": "m.tif", "cloud": 0.25})


def test_mask_gets_the_library_defaults(invoke: Invoke, mask_scene: Recorder) -> None:
    r = invoke(["mask", "s2.tif", "m.tif"])
    assert (r.status, r.out, r.err) == (0, '{"out": "m.tif", "cloud": 0.25}\n', "")
    assert mask_scene.call.args == (Path("s2.tif"), Path("m.tif"))
    assert mask_scene.call.kwargs == {"options": PredictOptions(), "overwrite": False}


def test_mask_every_flag_reaches_mask_scene(invoke: Invoke, mask_scene: Recorder) -> None:
    r = invoke(["mask", "in.SAFE", "m.tif", "--tile", "64", "--device", "cpu", "--threshold",
                "0.5", "--compress", "lzw", "--no-band-check", "--threads", "1", "--quiet",
                "--readers", "2", "--overwrite"])  # fmt: skip
    assert r.status == 0
    assert mask_scene.call.args == (Path("in.SAFE"), Path("m.tif"))
    assert mask_scene.call.kwargs == {
        "options": PredictOptions(tile=64, device="cpu", threshold=0.5, compress="LZW", readers=2,
                                  threads=1, progress=False, band_check=False),
        "overwrite": True,
    }  # fmt: skip


@pytest.mark.parametrize(("argv", "line"), [
    (["mask", "s2.tif"], "dsen2cr mask: error: the following arguments are required: out"),
    (["mask", "s2.tif", "m.tif", "--threshold", "high"],
     "dsen2cr mask: error: argument --threshold: invalid float value: 'high'"),
    (["mask", "s2.tif", "m.tif", "--batch", "2"], "dsen2cr: error: unrecognized arguments: --batch 2"),
])  # fmt: skip
def test_mask_usage_errors(usage_error: UsageError, mask_scene: Recorder, argv: list[str],
                           line: str) -> None:  # fmt: skip
    assert usage_error(argv) == line
    assert mask_scene.calls == []


def test_mask_errors_are_one_line_naming_flags(invoke: Invoke, mask_scene: Recorder) -> None:
    one_error_line(invoke(["mask", "s2.tif", "m.tif", "--readers", "0"]), "mask",
                   "--readers must be an integer >= 1, got 0")  # fmt: skip
    assert mask_scene.calls == []
    mask_scene.error = OutputExistsError("out", Path("m.tif"))
    one_error_line(invoke(["mask", "s2.tif", "m.tif"]), "mask",
                   "--out m.tif exists: add --overwrite to replace it")  # fmt: skip

"""The summary, data, train, evaluate and predict commands, and each of their refusals."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.cli import main
from cnnkit.data import load_dataset, registry
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.legacy import LEGACY_FORMAT
from cnnkit.model import TrainedModel
from tests.specs import SMALL, write_spec


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No downloads, a private cache, an empty system folder, two threads."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.setattr(registry, "_SYSTEM_FOLDER", tmp_path / "system")
    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    yield
    torch.set_num_threads(previous)


class TrainedByCli(NamedTuple):
    run: Path
    #: Images' passes through the network that `cnnkit train` made besides training itself.
    extra_passes: int


@pytest.fixture(scope="module")
def trained_by_cli(tmp_path_factory) -> TrainedByCli:
    """A run folder written by `cnnkit train` itself (small network, one short epoch, report
    included), for the tests of what that command writes; the other tests read the shared
    trained run."""
    folder = tmp_path_factory.mktemp("cli")
    passes = []
    evaluate = TrainedModel.evaluate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainedModel, "evaluate",
                      lambda self, *a, **k: passes.append(1) or evaluate(self, *a, **k))
        status = main(["train", "--arch", str(write_spec(SMALL, folder)), "--epochs", "1",
                       "--train-limit", "300", "--val-size", "100", "--quiet", "--out",
                       str(folder / "run")])
    assert status == 0
    return TrainedByCli(folder / "run", len(passes))


def _refused(capsys, argv, *fragments):
    """Run argv; it must exit with status 2 and print one 'cnnkit: error:' line naming
    the fragments."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnkit: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


def test_summary_prints_rows_and_total(capsys):
    """summary prints one row per layer and the tutorial's total."""
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "total parameters: 3,274,634" in out
    assert "64*7*7 = 3136" in out


def test_summary_of_a_spec_file(capsys, tmp_path):
    """summary reads a JSON spec and another input shape."""
    spec = write_spec(SMALL, tmp_path)
    assert main(["summary", "--arch", str(spec), "--input", "3x16x16", "--classes", "4"]) == 0
    assert "6*3*3*3 + 6 = 168" in capsys.readouterr().out


def test_summary_refusals(capsys):
    """A spec that does not fit, a bad shape and an unknown arch are refused in one line."""
    _refused(capsys, ["summary", "--input", "1x3x3"], "layer 5 (max_pool2d)")
    _refused(capsys, ["summary", "--input", "28x28"], "input shape")
    _refused(capsys, ["summary", "--arch", "vgg"], "'tutorial'")


def test_data_list_and_info(capsys):
    """data list names every data set; data info describes synthetic digits."""
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "not on disk" in out and "synthetic-digits" in out
    assert main(["data", "info", "synthetic-digits"]) == 0
    out = capsys.readouterr().out
    assert "train: 12000 images, per class 1200..1200" in out


def test_data_fetch_without_files_is_refused(capsys, tmp_path):
    """Fetching a missing data set offline says where it looked and how to get it."""
    _refused(capsys, ["data", "fetch", "mnist"], "not found", str(tmp_path / "system"),
             "CNNKIT_OFFLINE")


def test_data_info_of_unknown_dataset_is_refused(capsys):
    """An unknown data set name is refused."""
    _refused(capsys, ["data", "info", "cifar"], "dataset must be one of")


def test_train_writes_a_run_folder(trained_by_cli):
    """train writes checkpoints, metrics, config, curves and the report."""
    names = sorted(p.name for p in trained_by_cli.run.iterdir())
    assert names == ["best.safetensors", "checkpoint.safetensors", "config.json", "curves.png",
                     "initial.safetensors", "metrics.csv", "report.html"]


def test_train_prints_epochs_and_resume_continues(capsys, tmp_path):
    """Without --quiet train prints a line per epoch; --resume --epochs trains on."""
    spec = write_spec(SMALL, tmp_path)
    out_dir = tmp_path / "run"
    args = ["train", "--arch", str(spec), "--train-limit", "300", "--val-size", "0.1"]
    assert main([*args, "--epochs", "1", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "test accuracy" in out
    assert out.rstrip().endswith(" engine: checkpoint.safetensors, best.safetensors, "
                                 "metrics.csv, curves.png, report.html)")
    assert main(["train", "--resume", str(out_dir), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1 of 2" in out and "epoch 2/2" in out


def test_train_refusals(capsys, tmp_path, run_copy):
    """Missing data, unwritable or existing output, a bad split and bad flags are refused."""
    _refused(capsys, ["train", "--dataset", "mnist", "--out", str(tmp_path / "a")],
             "dataset 'mnist' not found")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _refused(capsys, ["train", "--train-limit", "100", "--out", str(blocker / "run")])
    _refused(capsys, ["train", "--out", str(run_copy)], "exists and is not empty")
    _refused(capsys, ["train", "--val-size", "1.0", "--out", str(tmp_path / "b")],
             "fraction must be in [0, 1)")
    _refused(capsys, ["train", "--val-size", "12000", "--out", str(tmp_path / "c")],
             "leave 0 to train on")
    _refused(capsys, ["train", "--val-size", "many", "--out", str(tmp_path / "d")],
             "--val-size")
    _refused(capsys, ["train"], "one of the arguments --out --resume is required")
    _refused(capsys, ["train", "--resume", str(tmp_path / "none")], "no checkpoint")
    _refused(capsys, ["train", "--resume", str(run_copy), "--out", str(tmp_path / "e")],
             "argument --out: not allowed with argument --resume")
    _refused(capsys, ["train", "--resume", str(run_copy), "--arch", "tutorial"],
             f"{len(SMALL['layers'])}-layer architecture ('small'), not 11 layers ('tutorial')")
    _refused(capsys, ["train", "--device", "tpu", "--out", str(tmp_path / "f")], "device")
    _refused(capsys, ["train", "--nproc", "0", "--out", str(tmp_path / "g")], "--nproc")


def test_train_refuses_nan(capsys, run_copy):
    """A diverging run stops with one clear line and exit status 2."""
    epochs = str(load_checkpoint(run_copy).epoch + 1)
    _refused(capsys, ["train", "--resume", str(run_copy), "--epochs", epochs, "--lr", "1e30"],
             "NaN or infinite", "is kept")


def test_evaluate_prints_report_and_saves_figure(capsys, trained_run, tmp_path):
    """evaluate prints accuracy, the per-class table and the matrix, and writes the PNG."""
    figure = tmp_path / "cm.png"
    assert main(["evaluate", str(trained_run), "--device", "cpu", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "precision" in out and "confusion matrix" in out
    assert figure.read_bytes()[:4] == b"\x89PNG"
    _refused(capsys, ["evaluate", str(trained_run), "--figure", str(figure)], "exists")


def test_evaluate_refusals(capsys, tmp_path, trained_run):
    """Bad, foreign and code-carrying checkpoints, and missing data, are refused in one line."""
    text = tmp_path / "text.safetensors"
    text.write_text("not a checkpoint")
    _refused(capsys, ["evaluate", str(text)], "not a cnnkit checkpoint")

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": LEGACY_FORMAT, "model": Payload()}, evil)
    _refused(capsys, ["evaluate", str(evil)], "earlier PyTorch format",
             f"cnnkit convert-checkpoint {evil}")
    _refused(capsys, ["convert-checkpoint", str(evil)], "refused to load", "could run code")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "evil.safetensors").exists()
    _refused(capsys, ["evaluate", str(tmp_path / "missing.pt")], "no checkpoint")
    _refused(capsys, ["evaluate", str(trained_run), "--dataset", "mnist", "--figure",
                      str(tmp_path / "x.png")], "not found")


def _digit_png(path, index=0):
    image = load_dataset("synthetic-digits").test_images[index, 0]
    Image.fromarray(255 - image).resize((56, 56)).save(path)
    return path


def test_predict_text_and_json(capsys, trained_run, tmp_path):
    """predict prints top-k classes per image, and --json gives the same as data."""
    image = _digit_png(tmp_path / "d.png")
    assert main(["predict", str(trained_run / "best.safetensors"), str(image), "--top", "2"]) == 0
    line, summary = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(f"{image} (inverted): ") and line.count("%") == 2
    assert summary.startswith("inverted 1 of 1 image(s) to match the training images' "
                              "background")
    assert main(["predict", str(trained_run), str(image), "--json", "--invert", "never"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["inverted"] is False and len(data[0]["top"]) == 3
    probabilities = [entry["probability"] for entry in data[0]["top"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_predict_refusals(capsys, trained_run, tmp_path):
    """A broken image, a missing image and a bad checkpoint are refused in one line."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    _refused(capsys, ["predict", str(trained_run), str(broken), "--on-error", "raise"],
             "broken.png")
    _refused(capsys, ["predict", str(trained_run), str(tmp_path / "none.png")], "none.png")
    _refused(capsys, ["predict", str(broken), str(broken)], "not a cnnkit checkpoint")
    _refused(capsys, ["predict", str(trained_run), str(broken), "--top", "0"], "top_k")


def test_image_folder_training(capsys, tmp_path):
    """train accepts imagefolder:PATH with --input, skipping a broken file with a report."""
    rng = np.random.default_rng(0)
    for name in ("bright", "dark"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for index in range(30):
            level = 200 if name == "bright" else 40
            pixels = np.clip(rng.normal(level, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{index}.png")
    (tmp_path / "imgs" / "dark" / "bad.png").write_bytes(b"x")
    spec = write_spec(SMALL, tmp_path)
    status = main(["train", "--dataset", f"imagefolder:{tmp_path / 'imgs'}", "--input",
                   "3x8x8", "--arch", str(spec), "--epochs", "2", "--val-size", "10",
                   "--out", str(tmp_path / "run")])
    assert status == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "bad.png" in out and "is not an image file" in out
    _refused(capsys, ["train", "--dataset", f"imagefolder:{tmp_path / 'imgs'}", "--on-error",
                      "raise", "--out", str(tmp_path / "run2")], "bad.png")


def test_numpy_engine_refuses_torch_only_options(capsys, tmp_path):
    """--engine numpy with bf16, --compile, a GPU or several processes is refused in one line
    before anything is written."""
    out = str(tmp_path / "run")
    for extra, fragment in ((["--precision", "bf16"], "--precision bf16"),
                            (["--compile"], "--compile"),
                            (["--device", "cuda"], "--device cuda"),
                            (["--nproc", "2"], "numpy engine runs in one process")):
        _refused(capsys, ["train", "--engine", "numpy", *extra, "--out", out], fragment)
    assert not (tmp_path / "run").exists()


def test_train_options_come_from_the_config_fields(capsys):
    """Every TrainConfig field has its option in train --help, and the flags set the fields;
    only ``recipe_overrides`` has none, being the record of which flags overrode a recipe."""
    import argparse
    import dataclasses

    from cnnkit.commands.train import add_config_options, build_config
    from cnnkit.engines.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_config_options(parser)
    flags = {action.dest: action.option_strings[0] for action in parser._actions
             if action.option_strings and action.dest != "help"}
    assert set(flags) == {item.name for item in dataclasses.fields(TrainConfig)} - {
        "recipe_overrides"}
    assert flags["fused_optimizer"] == "--no-fused" and flags["input_shape"] == "--input"
    args = parser.parse_args(["--no-fused", "--no-channels-last", "--input", "3x8x8",
                              "--val-size", "0.25", "--engine", "numpy", "--epochs", "4"])
    args.resume, args.config = None, None
    config = build_config(args)
    assert (config.fused_optimizer, config.channels_last, config.input_shape) == (
        False, False, (3, 8, 8))
    assert (config.val_size, config.engine, config.epochs, config.lr) == (0.25, "numpy", 4, 1e-3)
    assert (config.recipe, config.recipe_overrides) == (None, None)


def test_train_reads_a_saved_config(capsys, tmp_path, trained_run):
    """--config CONFIG.json starts from a run's saved configuration; flags override it."""
    config = json.loads((trained_run / "config.json").read_text())
    assert config["engine"] in ("numpy", "torch") and config["epochs"] != 1
    status = main(["train", "--config", str(trained_run / "config.json"), "--engine", "numpy",
                   "--epochs", "1", "--train-limit", "300", "--val-size", "50", "--quiet",
                   "--out", str(tmp_path / "again")])
    assert status == 0
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["arch"] == config["arch"] and saved["engine"] == "numpy"
    assert (saved["train_limit"], saved["epochs"]) == (300, 1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 2, "colour": "red"}')
    _refused(capsys, ["train", "--config", str(bad), "--out", str(tmp_path / "x")],
             "unknown keys ['colour']")


def test_summary_of_a_run_names_its_engine(capsys, trained_run):
    """summary --run prints the run's layers and the engine that trained it."""
    assert main(["summary", "--run", str(trained_run)]) == 0
    out = capsys.readouterr().out
    assert "total parameters" in out and "trained by the torch engine" in out


def test_run_folder_of_the_earlier_format_names_the_conversion(capsys, tmp_path):
    """A run folder holding only checkpoint.pt is refused by evaluate, predict, summary and
    train --resume with the command that converts it; nothing in it changes."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04" + bytes(64))
    hint = f"cnnkit convert-checkpoint {run}"
    _refused(capsys, ["evaluate", str(run), "--figure", str(tmp_path / "cm.png")], hint)
    _refused(capsys, ["predict", str(run), str(tmp_path / "x.png")], hint)
    _refused(capsys, ["summary", "--run", str(run)], hint)
    _refused(capsys, ["train", "--resume", str(run), "--epochs", "2"], hint)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]


def test_split_file_and_cache_reach_training(capsys, tmp_path):
    """A split file written by `data split` fixes train's validation and test images, and a
    second run reads the decoded cache instead of the files."""
    rng = np.random.default_rng(1)
    for name, level in (("bright", 200), ("dark", 40)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for index in range(24):
            pixels = np.clip(rng.normal(level, 20, (10, 10)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{index}.png")
    spec = write_spec(SMALL, tmp_path)
    dataset = f"imagefolder:{tmp_path / 'imgs'}"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["data", "split", dataset, str(tmp_path / "split.json"), "--input", "1x8x8",
                 "--val-size", "6", "--test-size", "8", *cache]) == 0
    lists = json.loads((tmp_path / "split.json").read_text())
    capsys.readouterr()
    for run in ("one", "two"):
        assert main(["train", "--dataset", dataset, "--input", "1x8x8", "--arch", str(spec),
                     "--epochs", "1", "--split-file", str(tmp_path / "split.json"), *cache,
                     "--out", str(tmp_path / run)]) == 0
    out = capsys.readouterr().out
    assert out.count("validation images as given (6)") == 2
    assert "test accuracy" in out and "on 8 images" in out
    assert len(lists["validation"]) == 6 and len(lists["test"]) == 8
    assert any((tmp_path / "cache").rglob("manifest.json"))


def test_training_writes_the_run_report(trained_by_cli):
    """A finished `cnnkit train` leaves the run's self-contained report beside its checkpoint."""
    report = (trained_by_cli.run / "report.html").read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>") and "Confusion matrix" in report
    assert "<script src=" not in report and "http://" not in report and "https://" not in report


def test_training_report_reuses_the_test_pass_and_equals_a_later_report(trained_by_cli,
                                                                        monkeypatch):
    """The report that train writes runs no image through the network twice (it reuses the
    final test pass) and is the page `cnnkit report` writes later from the checkpoint."""
    from cnnkit.report import build_report

    assert trained_by_cli.extra_passes == 0
    passes = []
    evaluate = TrainedModel.evaluate
    monkeypatch.setattr(TrainedModel, "evaluate",
                        lambda self, *a, **k: passes.append(1) or evaluate(self, *a, **k))
    written = (trained_by_cli.run / "report.html").read_text(encoding="utf-8")
    assert build_report(trained_by_cli.run) == written
    assert passes == [1]


def test_no_report_skips_it(capsys, tmp_path):
    """--no-report trains without writing report.html."""
    spec = write_spec(SMALL, tmp_path)
    assert main(["train", "--arch", str(spec), "--epochs", "1", "--train-limit", "200",
                 "--val-size", "50", "--quiet", "--no-report", "--out", str(tmp_path / "r")]) == 0
    assert not (tmp_path / "r" / "report.html").exists()


def test_quiet_prints_only_the_final_result(capsys, tmp_path):
    """--quiet prints one line: the final test accuracy and the run folder."""
    spec = write_spec(SMALL, tmp_path)
    assert main(["train", "--arch", str(spec), "--epochs", "1", "--train-limit", "200",
                 "--val-size", "50", "--quiet", "--no-report", "--out",
                 str(tmp_path / "r")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"test accuracy \d+\.\d\d%; run folder: {re.escape(str(tmp_path / 'r'))}",
                        lines[0]), lines[0]


# --- the data set train uses when none is named -------------------------------------------------


def _small_mnist(folder: Path, train: int = 240, test: int = 60) -> Path:
    """Four IDX files named like MNIST's, of random 28x28 images labelled 0 to 9 in turn."""
    from cnnkit.data.idx import write_idx

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                  (np.arange(count) % 10).astype(np.uint8))
    return folder


def _train_quickly(tmp_path: Path, *extra: str) -> list[str]:
    run = tmp_path / "run"
    argv = ["train", "--arch", str(write_spec(SMALL, tmp_path)), "--engine", "numpy",
            "--epochs", "1", "--train-limit", "200", "--val-size", "40", "--no-report",
            "--out", str(run), *extra]
    assert main(argv) == 0
    return json.loads((run / "config.json").read_text())["dataset"]


def test_train_without_dataset_says_it_uses_synthetic_digits_and_why(capsys, tmp_path):
    """Regression: without --dataset, train used synthetic digits silently while the README
    called the defaults the tutorial's. With MNIST nowhere on disk and downloads off, the first
    line names synthetic-digits, the folders searched and the reason; the run records it."""
    assert _train_quickly(tmp_path) == "synthetic-digits"
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("data set: synthetic-digits, as none was named (--dataset): MNIST, "
                            f"the tutorial's data set, is not in {tmp_path / 'cache'}")
    assert first.endswith("and downloads are off because CNNKIT_OFFLINE is set; synthetic "
                          "digits, which need no files, stand in for it")


def test_train_without_dataset_uses_mnist_when_it_is_on_disk(capsys, tmp_path):
    """With MNIST's files in --data-dir, train without --dataset trains on MNIST (the
    tutorial's), says so in its first line, records it, and a resume keeps it without a word."""
    folder = _small_mnist(tmp_path / "mnist")
    assert _train_quickly(tmp_path, "--data-dir", str(folder)) == "mnist"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("data set: mnist, as none was named (--dataset): MNIST, the tutorial's "
                        f"data set, is in {folder}")
    assert lines[1].startswith("mnist: 160 training, 40 validation images")
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "data set:" not in out and "mnist: 160 training" in out


def test_train_library_resolves_auto_and_keeps_a_resumed_runs_data(tmp_path):
    """In Python, TrainConfig() means dataset='auto': train() logs the choice, stores the name
    it chose in the checkpoint and the result; resuming with 'auto' keeps the run's own."""
    from cnnkit.engines.training import TrainConfig, train

    arguments = {"arch": str(write_spec(SMALL, tmp_path)), "engine": "numpy", "epochs": 1,
                 "train_limit": 200, "val_size": 40}
    lines: list[str] = []
    result = train(TrainConfig(**arguments), tmp_path / "run", log=lines.append,
                   evaluate_test=False)
    assert TrainConfig().dataset == "auto" and result.dataset == "synthetic-digits"
    assert lines[0].startswith("data set: synthetic-digits, as none was named")
    assert load_checkpoint(tmp_path / "run").config["dataset"] == "synthetic-digits"
    _small_mnist(tmp_path / "cache" / "cnnkit" / "mnist")  # MNIST appears in the cache
    lines.clear()
    again = train(TrainConfig(**{**arguments, "epochs": 2}), tmp_path / "run", resume=True,
                  log=lines.append, evaluate_test=False)
    assert again.dataset == "synthetic-digits" and not any("data set:" in line for line in lines)


def test_flips_are_refused_for_the_default_data_set(capsys):
    """Both data sets 'auto' can choose are digits, so --augment shift-flip is refused up front."""
    assert main(["train", "--augment", "shift-flip", "--out", "x"]) == 2
    assert "mirrors images" in capsys.readouterr().err

"""Files, parsing and escaping: cnnkit deletes only what it wrote, never blocks on a read, parses
every file by type and escapes what it writes for where it goes.

Each case builds its input in a temporary folder and checks the outcome as a user sees it: exit
status 2 and one line naming the file (or a correct result), no traceback, and every file that
cnnkit did not write left as it was.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnkit._json import parse
from cnnkit.cli import main
from cnnkit.data.cache import MARKER, clear_cache, load_image_folder
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.errors import BadFile, CnnkitError
from tests.hostile.helpers import assert_refused, run_cnnkit, snapshot
from tests.specs import TINY, write_spec

#: A byte that is not UTF-8, as Python keeps it in a file name (surrogateescape).
NOT_UTF8 = b"caf\xe9".decode("utf-8", "surrogateescape")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("cnnkit: error: "), lines[0]
    return lines[0]


def _image_folder(root: Path, classes=("a", "b"), per_class: int = 3) -> Path:
    """A tiny image folder: ``per_class`` 8x8 PNG files in each class sub-folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def _rewrite_checkpoint(path: Path, change) -> None:
    """Apply ``change(metadata)`` to the cnnkit metadata of the checkpoint at ``path``."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="numpy") as handle:
        metadata = json.loads(handle.metadata()["cnnkit"])
    change(metadata)
    save_file(load_file(str(path)), str(path), metadata={"cnnkit": json.dumps(metadata)})


# -- cnnkit deletes only what it wrote ---------------------------------------------------------

def _users_files(folder: Path) -> None:
    """The kind of files a user keeps in a folder mistaken for a cache folder."""
    for name, text in [(".ssh/id_rsa", "key"), (".git/HEAD", "ref: main"),
                       (".config/app/settings", "x=1"), ("project/manifest.json", "{}"),
                       ("project/app.js", "run()"), ("x-1x2x3-0123456789abcdef/notes", "mine"),
                       ("notes.lock", "")]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_cache_clear_refuses_a_folder_that_is_not_a_cache(tmp_path, capsys):
    """`data cache clear` on a user's folder (no cnnkit mark) is refused in one line naming
    the folder, and removes nothing (it used to delete .ssh/, .git/, project/)."""
    folder = tmp_path / "home"
    _users_files(folder)
    before = snapshot(folder)
    assert main(["data", "cache", "clear", "--cache-dir", str(folder)]) == 2
    line = _one_error_line(capsys)
    assert f"cache_dir {folder} is not a cnnkit cache folder" in line
    assert snapshot(folder) == before


def test_cache_clear_removes_only_its_own_entries(tmp_path):
    """In a marked cache folder that also holds a user's files (one named like a cache
    folder), clearing removes only the cache folder cnnkit wrote; no lock file is left."""
    images = _image_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    built = load_image_folder(images, (1, 8, 8), cache_dir=cache, workers=1)
    assert built.cache_state == "built" and (cache / MARKER).is_file()
    assert list(cache.glob("*.lock")) == []
    _users_files(cache)
    users = {name: digest for name, digest in snapshot(cache).items()
             if not name.startswith(built.cache_path.name)}
    assert clear_cache(cache) == [built.cache_path]
    assert snapshot(cache) == users  # the mark, and every file of the user's
    assert list(cache.glob("*.lock")) == [Path(cache / "notes.lock")]


def test_read_only_cache_folder_decodes_into_memory(tmp_path, monkeypatch):
    """A cache folder that cannot be written does not stop loading: the images are decoded
    into memory with a one-line notice (as the README says)."""
    import errno

    import cnnkit.data.cache as cache_module

    images = _image_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    cache.mkdir()
    real_open = open

    def read_only(path, mode="r", *args, **kwargs):  # a read-only file system, even for root
        if str(path).startswith(str(cache)) and mode[0] in "wax":
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(cache_module, "open", read_only, raising=False)
    lines: list[str] = []
    loaded = load_image_folder(images, (1, 8, 8), cache_dir=cache, workers=1,
                               report=lines.append)
    assert loaded.cache_state == "not written" and loaded.images.shape == (6, 1, 8, 8)
    assert len(lines) == 1 and "Read-only file system" in lines[0]
    assert "decoding into memory" in lines[0]
    assert list(cache.iterdir()) == []


def test_damaged_cache_is_rebuilt_with_a_notice(tmp_path):
    """A cache folder that lost its manifest is rebuilt with a line saying it was damaged."""
    images = _image_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    built = load_image_folder(images, (1, 8, 8), cache_dir=cache, workers=1)
    (built.cache_path / "manifest.json").unlink()
    lines: list[str] = []
    again = load_image_folder(images, (1, 8, 8), cache_dir=cache, workers=1,
                              report=lines.append)
    assert again.cache_state == "built"
    assert len(lines) == 1 and "is damaged" in lines[0] and "rebuilding" in lines[0]


#: A quick run that is still in its first epoch a few seconds after it starts.
LONG_FIRST_EPOCH = ("--epochs", "5", "--train-limit", "20000", "--val-size", "64", "--threads",
                    "1", "--engine", "numpy", "--no-report")


def _overwrite_until_set_aside(tmp_path: Path, spec: Path) -> subprocess.Popen:
    """`train --out run --overwrite`, returned once the earlier run is set aside and the new
    one is training its first epoch."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnkit", "train", "--out", "run", "--overwrite", "--arch",
         str(spec), *LONG_FIRST_EPOCH],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "CNNKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    run = tmp_path / "run"
    # The earlier run's initial weights set aside, and the new run's written in their place.
    while not ((run / ".previous-run" / "initial.safetensors").exists()
               and (run / "initial.safetensors").exists()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the new run did not start"
        time.sleep(0.02)
    time.sleep(0.3)  # into the first epoch
    return process


@pytest.mark.parametrize(("kind", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_stopped_overwrite_puts_the_earlier_run_back(tmp_path, run_copy, kind, status):
    """SIGTERM or Ctrl-C during the first epoch of `train --overwrite` over a finished run puts
    every file of the earlier run back as it was (it used to leave a mid-epoch checkpoint of
    epoch 0 in their place)."""
    (run_copy / "notes.txt").write_text("the user's own notes")
    before = snapshot(run_copy)
    process = _overwrite_until_set_aside(tmp_path, write_spec(TINY, tmp_path))
    process.send_signal(getattr(signal, kind))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr.decode()
    assert snapshot(run_copy) == before
    assert sorted(path.name for path in run_copy.iterdir() if path.name.startswith(".")) == []


def test_killed_overwrite_leaves_the_earlier_run_findable(tmp_path, run_copy, capsys):
    """After SIGKILL during `train --overwrite`, the earlier run stays in .previous-run/;
    evaluate says where it is and how to get it back, and --resume puts it back."""
    earlier = load_checkpoint(run_copy)
    before = snapshot(run_copy)
    process = _overwrite_until_set_aside(tmp_path, write_spec(TINY, tmp_path))
    process.kill()
    process.communicate(timeout=60)
    assert (run_copy / ".previous-run" / "checkpoint.safetensors").is_file()
    assert main(["evaluate", str(run_copy)]) == 2
    line = _one_error_line(capsys)
    assert ".previous-run" in line and f"cnnkit train --resume {run_copy}" in line
    from cnnkit.runfolder import RunFolder

    note = RunFolder(run_copy).recover()  # what `train --resume` does first
    assert "put back the earlier run" in note
    assert snapshot(run_copy) == before
    assert load_checkpoint(run_copy).epoch == earlier.epoch


def test_overwrite_again_after_a_kill_keeps_the_earlier_run_aside(tmp_path):
    """A new --overwrite into a folder where a killed --overwrite left the earlier run aside
    replaces the killed run's files and keeps the earlier run aside until it completes an
    epoch (failing before that puts the earlier run back); the user's folder
    `checkpoint.old/` is never touched."""
    from cnnkit.runfolder import RunFolder

    run = RunFolder(tmp_path / "run")
    (run.previous).mkdir(parents=True)
    run.previous.joinpath("checkpoint.safetensors").write_text("earlier run")
    run.config.write_text("killed run")
    (run.path / "checkpoint.old").mkdir()
    (run.path / "checkpoint.old" / "mine").write_text("the user's")
    run.open(overwrite=True)
    assert not run.config.exists() and run.replacing
    run.config.write_text("new run")
    assert run.restore()
    assert run.checkpoint.read_text() == "earlier run" and not run.config.exists()
    assert not run.previous.exists()
    assert (run.path / "checkpoint.old" / "mine").read_text() == "the user's"
    run.unlock()


def test_resume_removes_a_killed_writers_temporaries(tmp_path, run_copy):
    """Half-written checkpoints that a killed run left (atomic_write's names) are removed when
    the run is resumed, even when the resume is then refused; other dot files stay."""
    temporaries = [".checkpoint.safetensors.ab_cd123.safetensors",
                   ".best.safetensors.x1y2z3w4.safetensors"]
    for name in temporaries:
        (run_copy / name).write_bytes(b"\0" * 4096)
    for name in (".my-notes", ".metrics.csv.backup.old"):  # the user's, named alike
        (run_copy / name).write_text("kept")
    from cnnkit.runfolder import RunFolder

    assert "removed 2 half-written file(s)" in RunFolder(run_copy).recover()
    assert sorted(p.name for p in run_copy.iterdir() if p.name.startswith(".")) == [
        ".metrics.csv.backup.old", ".my-notes"]


# -- no file read blocks -----------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def test_checkpoint_naming_a_fifo_as_its_architecture_is_refused(tmp_path, run_copy, fifo):
    """A checkpoint whose model_info.arch names a FIFO is refused at once (predict hung)."""
    _rewrite_checkpoint(run_copy / "checkpoint.safetensors",
                        lambda metadata: metadata["model_info"].update(arch=str(fifo)))
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "digit.png")
    outcome = run_cnnkit("predict", "run", "digit.png", cwd=tmp_path, timeout=30)
    assert_refused(outcome, "'model_info.arch' must be an architecture object or a built-in")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["summary", "--arch", "{fifo}"], "arch file {fifo} is a FIFO (named pipe), not a "
                                          "regular file"),
        (["evaluate", "{fifo}"], "checkpoint {fifo} is a FIFO (named pipe)"),
        (["filter", "{fifo}", "--kernel", "sobel_x", "-o", "out.png"],
         "image file {fifo} is a FIFO (named pipe)"),
        (["data", "info", "imagefolder:images", "--split-file", "{fifo}"],
         "split file {fifo} does not exist or is not a file"),
    ],
    ids=["arch", "checkpoint", "image", "split-file"],
)
def test_fifos_are_refused_without_blocking(tmp_path, fifo, capsys, monkeypatch, arguments,
                                           message):
    """A FIFO given where a file is read is refused in one line, without waiting for a
    writer (each of these would block for ever on open or read)."""
    _image_folder(tmp_path / "images")
    monkeypatch.chdir(tmp_path)
    arguments = [argument.format(fifo=fifo) for argument in arguments]
    assert main(arguments) == 2
    assert message.format(fifo=fifo) in _one_error_line(capsys)


def test_fifo_given_to_predict_is_refused_at_once(tmp_path, trained_run, fifo, capsys):
    """`predict` on a FIFO named like an image says why it cannot read it, at once."""
    image = fifo.rename(tmp_path / "pipe.png")
    assert main(["predict", str(trained_run), str(image)]) == 2
    assert f"image file {image} is a FIFO (named pipe)" in _one_error_line(capsys)


# -- text that leaves cnnkit is escaped for where it goes --------------------------------------

def test_predict_csv_escapes_formulas_and_names_that_are_not_utf8(tmp_path, run_copy):
    """Cells starting with = + - @ tab or CR (class names and file names) are prefixed with a
    single quote and quoted (OWASP); a file name that is not UTF-8 is written as \\xNN."""
    from PIL import Image

    names = ["=HYPERLINK(\"http://x\")", "@SUM(A1)", "+cmd", "-2+3", "\tx", "\rx", "ok", "3",
             "4", "5"]
    _rewrite_checkpoint(run_copy / "checkpoint.safetensors",
                        lambda metadata: metadata["model_info"].update(class_names=names))
    images = tmp_path / "images"
    images.mkdir()
    for stem in ["=1+1", "@SUM(A1)", "+cmd", NOT_UTF8]:
        Image.new("L", (28, 28), 200).save(os.path.join(os.fsencode(images),
                                                        os.fsencode(stem + ".png")))
    out = tmp_path / "out.csv"
    assert main(["predict", str(run_copy), str(images), "--csv", str(out), "--top", "10",
                 "--quiet"]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        text = handle.read()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK(\"http://x\")" in cells and "'@SUM(A1)" in cells and "'\tx" in cells
    assert any("caf\\xe9.png" in cell for cell in cells)
    assert all(line.startswith('"') for line in text.split("\r\n") if line)  # all quoted


def test_folder_names_that_are_not_utf8_are_shown_the_same_way(tmp_path):
    """A class folder whose name is not UTF-8 becomes the class name `caf\\xe9` (as stderr
    shows it), which every output can write."""
    from cnnkit.data.imagefolder import list_image_folder
    from cnnkit.modelinfo import ModelInfo

    root = tmp_path / "images"
    _image_folder(root, classes=("a", NOT_UTF8))
    listing = list_image_folder(root)
    assert listing.class_names == ["a", "caf\\xe9"]
    folder = load_image_folder(root, (1, 8, 8), cache_dir=tmp_path / "cache", workers=1)
    assert folder.labels.tolist() == [0, 0, 0, 1, 1, 1]
    info = ModelInfo.from_dict({"arch": "tutorial", "input_shape": [1, 28, 28],
                                "num_classes": 10, "mean": 0.1, "std": 0.3,
                                "class_names": [NOT_UTF8, *"123456789"]})
    assert info.class_names[0] == "caf\\xe9"
    info.class_names[0].encode("utf-8")  # writable as UTF-8


# -- every parse is typed ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": ["conv2d"]}, {"type": "flatten"}], "layer 0 has type ['conv2d']"),
        ([{"type": {"a": 1}}], "layer 0 has type {'a': 1}"),
    ],
    ids=["type-list", "type-dict"],
)
def test_spec_with_a_layer_type_of_the_wrong_type_is_refused(tmp_path, capsys, layers,
                                                             message):
    """A layer "type" that is a list or an object is one line, exit 2 (it was a TypeError)."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "x", "layers": layers}))
    assert main(["summary", "--arch", str(spec)]) == 2
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("change", "command", "message"),
    [
        (lambda m: m["model_info"]["arch"]["layers"][0].update(type=["conv2d"]), "summary",
         "layer 0 has type ['conv2d']"),
        (lambda m: m["model_info"].update(input_shape="1x28x28"), "summary",
         "'model_info.input_shape' must be a list of 3 integers, got a string"),
        (lambda m: m.update(history=["epoch 1", "epoch 2"]), "report",
         "'history[0]' must be an object, got a string"),
        (lambda m: m["history"][0].update(val_accuracy="high"), "report",
         "'history[0].val_accuracy' must be a number, got a string"),
    ],
    ids=["layer-type-list", "input-shape-string", "history-strings", "history-value-string"],
)
def test_checkpoint_entries_of_the_wrong_type_are_refused(run_copy, capsys, change, command,
                                                          message):
    """Wrong types inside a checkpoint are refused when it is loaded, naming the entry."""
    _rewrite_checkpoint(run_copy / "checkpoint.safetensors", change)
    arguments = ["summary", "--run", str(run_copy)] if command == "summary" else [
        "report", str(run_copy)]
    assert main(arguments) == 2
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
        ('{"a":' * 20_000 + "1" + "}" * 20_000, "nested 20000 levels deep"),
        ("[" + "9" * 5000 + "]", "integer of more than 64 digits"),
        ('["[[[[", "\\"]]]"]', None),
        ("[1." + "0" * 80 + "1, 1e-" + "0" * 80 + "1, 2" + "0" * 60 + "]", None),
    ],
    ids=["deep-lists", "deep-objects", "long-integer", "brackets-in-strings", "long-floats"],
)
def test_json_is_bounded_before_it_is_parsed(text, message):
    """Deep nesting and huge integers are refused before parsing; brackets inside strings and
    long fractions or exponents are not mistaken for either."""
    if message is None:
        assert parse(text, "text") == json.loads(text)
    else:
        with pytest.raises(BadFile, match=message):
            parse(text, "text")


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 20_000 + "1" + "}" * 20_000,
     '{"signal": [' + "9" * 5000 + "]}"],
    ids=["deep-lists", "deep-objects", "long-integer"],
)
def test_server_answers_400_to_hostile_json(body):
    """A playground request nested 100,000 deep, 20,000 objects deep or holding a 5,000-digit
    integer is a 400 with one line, not a 500."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from cnnkit.serve.app import create_app

    with TestClient(create_app(None), raise_server_exceptions=False) as client:
        response = client.post("/api/signal1d", content=body.encode(),
                               headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "the request body" in response.json()["error"]


# -- bf16 and pickles in checkpoints -----------------------------------------------------------

def test_bf16_checkpoint_loads_in_both_engines(run_copy):
    """Weights stored as bfloat16 or float16 (a PyTorch half-precision save) are read as
    float32 and the run evaluates with either engine; a dtype cnnkit cannot use (float8) is
    refused by name."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = run_copy / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    halves = {name: value.to(torch.bfloat16 if index % 2 else torch.float16)
              if name.startswith("model.") else value
              for index, (name, value) in enumerate(tensors.items())}
    save_file(halves, str(path), metadata=metadata)
    loaded = load_checkpoint(run_copy)
    assert {value.dtype for value in loaded.model.values()} == {np.dtype(np.float32)}
    from cnnkit.model import TrainedModel

    for engine in ("numpy", "torch"):
        model = TrainedModel.load(run_copy, engine=engine)
        assert np.isfinite(model.probabilities(np.zeros((1, 1, 28, 28), np.float32))).all()
    tensors["model.0.weight"] = tensors["model.0.weight"].to(torch.float8_e4m3fn)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CnnkitError, match=r"'model\.0\.weight' is stored as F8_E4M3, which "
                                          r"cnnkit does not read"):
        load_checkpoint(run_copy)


def test_pickle_checkpoint_is_refused_with_cnnkits_own_message(tmp_path, capsys):
    """A torch.save file holding code is refused with cnnkit's message and a safe way to
    convert the weights, never torch's hint to retry with weights_only=False."""
    import torch

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo never",))

    torch.save({"format": "cnnkit-checkpoint-1", "payload": RunsCode()},
               tmp_path / "checkpoint.pt")
    assert main(["convert-checkpoint", str(tmp_path / "checkpoint.pt")]) == 2
    line = _one_error_line(capsys)
    assert "refused to load" in line and "could run code" in line
    assert "safetensors.torch.save_file(model.state_dict()" in line
    assert "weights_only" not in line


def test_bf16_weights_in_an_earlier_format_checkpoint_convert(trained_run, tmp_path, capsys):
    """A torch.save checkpoint of the earlier format whose weights are bfloat16 converts, its
    weights becoming float32 (they failed with "Got unsupported ScalarType BFloat16")."""
    import torch

    from cnnkit.engines.legacy import LEGACY_FORMAT
    from cnnkit.nn.optim import to_torch_optimizer_state

    current = load_checkpoint(trained_run)
    old = {"format": LEGACY_FORMAT,
           "model": {key: torch.from_numpy(np.array(value)).to(torch.bfloat16)
                     for key, value in current.model.items()},
           "optimizer": to_torch_optimizer_state(current.optimizer), "epoch": current.epoch,
           "best_accuracy": current.best_accuracy, "config": json.dumps(current.config),
           "model_info": json.dumps(current.model_info),
           "history": json.dumps(current.history), "world_size": 1}
    torch.save(old, tmp_path / "checkpoint.pt")
    assert main(["convert-checkpoint", str(tmp_path / "checkpoint.pt")]) == 0
    capsys.readouterr()
    converted = load_checkpoint(tmp_path / "checkpoint.safetensors")
    for key, array in current.model.items():
        assert converted.model[key].dtype == np.float32
        np.testing.assert_allclose(converted.model[key], array, rtol=1e-2, atol=1e-6)

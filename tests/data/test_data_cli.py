"""cnnkit data info / split / cache on a generated image folder: output, exit status 2 on
bad input in one line."""

from __future__ import annotations

import json

import pytest

from cnnkit.cli import main


def _refused(capsys, argv, text):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0] and "Traceback" not in err[0], err


def test_info_split_and_cache(image_root, tmp_path, capsys):
    """info shows classes, sizes, modes and the cache; split writes a file; cache lists and
    clears."""
    cache = str(tmp_path / "cache")
    name = f"imagefolder:{image_root}"
    assert main(["data", "info", name, "--input", "1x8x8", "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert "3 classes" in out and "modes: PNG L 61, JPEG RGB 60, PNG RGB 59" in out
    assert "unreadable files: 0" in out and "cache: written now" in out
    assert main(["data", "info", name, "--input", "1x8x8", "--cache-dir", cache]) == 0
    assert "cache: up to date, opened" in capsys.readouterr().out
    split = tmp_path / "split.json"
    assert main(["data", "split", name, str(split), "--input", "1x8x8", "--test-size", "18",
                 "--cache-dir", cache]) == 0
    assert "train 135, validation 27, test 18" in capsys.readouterr().out
    assert len(json.loads(split.read_text())["test"]) == 18
    assert main(["data", "info", name, "--input", "1x8x8", "--cache-dir", cache,
                 "--split-file", str(split)]) == 0
    assert "split given by the split file" in capsys.readouterr().out
    assert main(["data", "cache", "list", "--cache-dir", cache]) == 0
    assert "1x8x8  180 images" in capsys.readouterr().out
    assert main(["data", "cache", "clear", "--cache-dir", cache]) == 0
    assert "removed 1 cached image folder(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "text"), [
    (["data", "info", "imagefolder:{root}/nope"], "nope does not exist"),
    (["data", "info", "imagefolder:{root}", "--workers", "0"], "--workers must be at least 1"),
    (["data", "info", "imagefolder:{root}", "--split-file", "{root}/none.json"],
     "none.json does not exist"),
    (["data", "split", "synthetic-digits", "{root}/s.json"], "data split needs imagefolder"),
    (["data", "split", "imagefolder:{root}", "{root}/a/000.png"], "already exists"),
    (["data", "cache", "list", "--cache-dir", "{root}/a/000.png"], "not a folder"),
])
def test_bad_input_exits_2(image_root, capsys, argv, text):
    """Bad folders, arguments and files exit with status 2 and one line naming them."""
    _refused(capsys, [item.format(root=image_root) for item in argv], text)

"""The run report: its sections, its size, its independence from the network, its writing."""

from __future__ import annotations

import re

import pytest
from tests.specs import SMALL

from cnnkit import evaluation
from cnnkit.data.registry import DatasetNotFoundError
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.report import build_report, write_report
from cnnkit.runfolder import REPORT_NAME

SECTIONS = ("data", "architecture", "curves", "metrics", "confusion", "wrong", "kernels",
            "examples", "pca")


def test_report_has_every_section_and_only_inline_resources(report_path):
    """All sections are there; every image is a data URI; nothing refers to another file."""
    text = report_path.read_text(encoding="utf-8")
    assert report_path.name == REPORT_NAME
    for anchor in SECTIONS:
        assert f'<section id="{anchor}"' in text
    sources = re.findall(r'\ssrc="([^"]*)"', text)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    hrefs = re.findall(r'\shref="([^"]*)"', text)
    assert hrefs and all(href.startswith("#") for href in hrefs)
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", text)
    assert not re.search(r"\b(https?|ftp|wss?)://", without_images)
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_report_tables_hold_the_run(report_path):
    """The architecture table has the traced formula; the curves have a point per epoch."""
    text = report_path.read_text(encoding="utf-8")
    kernels = SMALL["layers"][0]["out_channels"]  # 3x3 on one input channel, plus a bias each
    assert f"{kernels}*1*3*3 + {kernels} = {kernels * 9 + kernels}" in text
    epochs = len(load_checkpoint(report_path.parent).history)
    # per epoch: training and validation loss, training and validation accuracy, rate
    assert epochs > 1 and text.count('class="point"') == epochs * 5


def test_report_is_small(report_path):
    """Well under the 5 MB a Fashion-MNIST report may take."""
    assert report_path.stat().st_size < 5_000_000


def test_report_without_test_data_says_so(trained_run, monkeypatch):
    """Without the data set the report keeps the other sections and says what is missing."""

    def missing(*args, **kwargs):
        raise DatasetNotFoundError("synthetic-digits is nowhere on disk")

    monkeypatch.setattr(evaluation, "load_split", missing)
    text = build_report(trained_run)
    assert "nowhere on disk" in text and "left out" in text
    assert '<section id="kernels"' in text and '<section id="confusion"' not in text


def test_write_report_refreshes_its_own_file_but_not_others(report_path, tmp_path):
    """RUN/report.html is replaced without asking; another existing path is refused, and no
    temporary file is left behind."""
    run_dir = report_path.parent
    assert write_report(run_dir) == report_path
    other = tmp_path / "elsewhere.html"
    other.write_text("keep me")
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_report(run_dir, other)
    assert other.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.html"]
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".report")]


def test_report_of_a_missing_folder_is_refused(tmp_path):
    """A run folder that does not exist is named."""
    with pytest.raises(NotADirectoryError, match="nothing"):
        write_report(tmp_path / "nothing")

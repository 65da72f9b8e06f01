"""A run's report: one self-contained HTML file that shows what the network learned.

:func:`write_report` writes ``RUN/report.html``: the data and configuration, the architecture
with the output-size formula per layer, the learning curves, per-class precision, recall and
F1, the confusion matrix (a click on a cell shows those test images), the most confidently
wrong test images, the first layer's kernels with their nearest classic kernel, feature maps
and attributions for a few test images per class, and a map of the penultimate features
(PCA) where hovering a point shows its image.

The file needs nothing else: images are PNG data URIs, charts are inline SVG, and the little
script and style sheet are inline; it makes no network request, so it opens from disk in any
browser and can be mailed or archived with the run. Everything interactive is reachable with
the keyboard, and the page prints.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit._files import atomic_write
from cnnkit.engines.checkpoint import Checkpoint
from cnnkit.errors import AlreadyExists, NotAFolder
from cnnkit.model import METHODS, TrainedModel
from cnnkit.modelinfo import ModelInfo
from cnnkit.pictures import (
    as_picture,
    attribution_overlay,
    colour_table,
    coloured,
    flat_map,
    png_data_uri,
    script_json,
)
from cnnkit.runfolder import RunFolder

__all__ = ["TestPass", "build_report", "write_report"]


#: Class colours (matplotlib's tab10), repeated for more classes.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")

_CELL_IMAGES = 24  # images shown per confusion-matrix cell
_WRONG_IMAGES = 24  # most confidently wrong images shown
_PCA_PER_CLASS = 100  # points per class on the feature map


def write_report(
    run_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    data_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    download: bool = True,
    engine: str | None = None,
    test_pass: TestPass | None = None,
) -> Path:
    """Write the report of a run folder, atomically; return its path.

    Parameters
    ----------
    run_dir : path-like
        A run folder written by ``cnnkit train`` (its last checkpoint is used).
    output : path-like, optional
        Default ``run_dir/report.html``, which is the run's own derived file and is always
        refreshed. Another path is refused when it exists, unless ``overwrite``.
    data_dir : path-like, optional
        Searched first for the data set's files (as in ``cnnkit evaluate``).
    device : str
        Where the model runs (PyTorch engine).
    download : bool
        Allow downloading the test data when it is not on disk. Without the data the report
        leaves out the sections that need test images and says so.
    engine : {'auto', 'numpy', 'torch'}, optional
        Which engine computes (default: PyTorch where it imports, NumPy otherwise); the report
        has the same sections either way.
    test_pass : TestPass, optional
        The test split already run through the run's last checkpoint (training's final test
        keeps one), so that no image goes through the network twice.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotAFolder(f"run folder {run_dir} does not exist or is not a folder")
    target = RunFolder(run_dir).report if output is None else Path(output)
    if output is not None and target.exists() and not overwrite:
        raise AlreadyExists(f"{target} exists; pass --overwrite or choose another -o")
    text = build_report(run_dir, data_dir=data_dir, device=device, download=download,
                        engine=engine, test_pass=test_pass)
    return atomic_write(target, lambda temporary: temporary.write_text(text, encoding="utf-8"),
                        overwrite=True)


def build_report(
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    download: bool = True,
    examples_per_class: int = 2,
    engine: str | None = None,
    model: TrainedModel | None = None,
    test_pass: TestPass | None = None,
) -> str:
    """The report of a run folder as HTML text (see :func:`write_report`).

    ``model`` is the run's model already loaded (default: loaded here on ``engine``), and
    ``test_pass`` the test split's pass through it, when the caller has made one (training does,
    for its final test): the report then runs no image through the network twice.
    """
    from cnnkit.data.registry import DatasetNotFoundError, DownloadError
    from cnnkit.evaluation import load_split

    if model is None:
        model = TrainedModel.load(run_dir, engine=engine, device=device)
    state, info = model.checkpoint, model.info
    page = _Page(Path(run_dir).resolve().name, list(info.class_names))
    test = None
    if test_pass is None:
        try:
            dataset, split, images, labels = load_split(
                state, f"the model in {run_dir}", data_dir=data_dir, download=download)
        except (DatasetNotFoundError, DownloadError) as exc:
            dataset = info.dataset
            page.missing_data = f"The {dataset} images are not available ({exc})."
        else:
            result = model.evaluate(images, labels, outputs=True)
            test_pass = TestPass(dataset, split, images, labels, result["probabilities"],
                                 result["features"])
    if test_pass is not None:
        dataset = test_pass.dataset
        test = _TestResults(test_pass.images, test_pass.labels, test_pass.probabilities,
                            test_pass.features, test_pass.split)
    page.add("data", "Data and configuration", _data_section(state, info, dataset, test))
    page.add("architecture", "Architecture", _architecture_section(info))
    page.add("curves", "Learning curves", _curves_section(state.history))
    if test is not None:
        page.add("metrics", "Precision, recall and F1", _metrics_section(page, test))
        page.add("confusion", "Confusion matrix", _confusion_section(page, test))
        page.add("wrong", "Most confidently wrong", _wrong_section(page, test))
    page.add("kernels", "First-layer kernels", _kernels_section(model))
    if test is not None and model.info.conv_layers:
        page.add("patches", "What each filter responds to", _patches_section(model, test))
    if test is not None:
        page.add("examples", "Feature maps and attributions",
                 _examples_section(page, model, test, examples_per_class))
        page.add("pca", "Map of the penultimate features", _pca_section(page, test))
        page.add("sanity", "Sanity checks of the attributions", _sanity_section(model, test))
    return page.render()


@dataclass
class TestPass:
    """A split's images run through a model once: what a report needs of the test data."""

    dataset: str
    split: str
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray
    probabilities: np.ndarray  # float64 (N, classes)
    features: np.ndarray  # float32 (N, features): the input of the last layer


class _TestResults:
    """The test images and what the model made of them."""

    def __init__(self, images, labels, probabilities, features, split: str) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.probabilities = probabilities
        self.features = features
        self.split = split
        self.predictions = probabilities.argmax(axis=1)
        self.confidence = probabilities[np.arange(len(labels)), self.predictions]


# --- The page --------------------------------------------------------------------------------


class _Page:
    """Sections, and the images they share (each test image is encoded once)."""

    def __init__(self, name: str, class_names: list[str]) -> None:
        self.name = name
        self.class_names = class_names
        self.sections: list[tuple[str, str, str]] = []
        self.images: dict[int, str] = {}  # test index -> data URI
        self.data: dict[str, object] = {"classes": class_names}
        self.missing_data = ""
        self.confusion = np.zeros((len(class_names), len(class_names)), np.int64)

    def add(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def image(self, test: _TestResults, index: int) -> str:
        """The data URI of test image ``index``, encoded on first use."""
        index = int(index)
        if index not in self.images:
            self.images[index] = png_data_uri(as_picture(test.images[index]))
        return self.images[index]

    def render(self) -> str:
        links = "".join(f'<li><a href="#{anchor}">{html.escape(title)}</a></li>'
                        for anchor, title, _ in self.sections)
        body = "".join(
            f'<section id="{anchor}" aria-labelledby="{anchor}-title">'
            f'<h2 id="{anchor}-title">{html.escape(title)}</h2>{content}</section>'
            for anchor, title, content in self.sections)
        missing = (f'<p class="note" role="status">{html.escape(self.missing_data)} The sections '
                   'that need test images are left out.</p>' if self.missing_data else "")
        payload = {**self.data, "images": {str(k): v for k, v in self.images.items()}}
        data = script_json(payload)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>cnnkit report: {html.escape(self.name)}</title>"
            f"<style>{_STYLE}{_shared('featuremaps.css')}</style></head><body>"
            '<a class="skip" href="#main">Skip to the report</a>'
            f"<header><h1>cnnkit report: {html.escape(self.name)}</h1>"
            f'<nav aria-label="Sections"><ul>{links}</ul></nav></header>'
            f'<main id="main">{missing}{body}</main>'
            '<div id="tip" role="tooltip" hidden></div>'
            f'<script type="application/json" id="report-data">{data}</script>'
            f"<script>{_SCRIPT}{_shared('featuremaps.js')}{_MAPS_SCRIPT}</script>"
            "</body></html>\n"
        )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str = "",
           numeric_from: int = 1) -> str:
    """An HTML table; columns from ``numeric_from`` on are right-aligned."""
    head = "".join(f'<th scope="col"{" class=num" if i >= numeric_from else ""}>'
                   f"{html.escape(str(h))}</th>" for i, h in enumerate(header))
    lines = []
    for row in rows:
        cells = [f'<th scope="row">{html.escape(str(row[0]))}</th>'] + [
            f'<td{" class=num" if i >= numeric_from else ""}>{html.escape(str(value))}</td>'
            for i, value in enumerate(row[1:], start=1)]
        lines.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


# --- Sections --------------------------------------------------------------------------------


def _data_section(state: Checkpoint, info: ModelInfo, dataset: str,
                  test: _TestResults | None) -> str:
    config, history = state.config, state.history
    shape = "×".join(map(str, info.input_shape))
    facts = [
        ("data set", dataset),
        ("input", f"{shape} (channels × height × width)"),
        ("classes", ", ".join(info.class_names)),
        ("normalisation", info.normalisation.describe(4).replace("-", "−")),
        ("epochs trained", state.epoch),
    ]
    if history:
        last = history[-1]
        facts.append(("final training accuracy", f"{100 * last['train_accuracy']:.2f}%"))
        if last.get("val_accuracy") is not None:
            facts.append(("final validation accuracy", f"{100 * last['val_accuracy']:.2f}%"))
    if test is not None:
        accuracy = float(np.mean(test.predictions == test.labels))
        facts.append((f"accuracy on {test.split} ({len(test.labels):,} images)",
                      f"{100 * accuracy:.2f}%"))
    settings = sorted((key, json.dumps(value) if isinstance(value, (list, dict)) else value)
                      for key, value in config.items())
    return (_table(["", "value"], facts, caption="The run", numeric_from=9)
            + _table(["setting", "value"], settings, caption="Training configuration",
                     numeric_from=9))


def _architecture_section(info: ModelInfo) -> str:
    arch, rows = info.arch, info.layers
    lines = [("input", "", "×".join(map(str, info.input_shape)), 0, "")]
    for row, layer in zip(rows, arch.layers):
        options = ", ".join(f"{key} {value}" for key, value in layer.items() if key != "type")
        lines.append((row.index, f"{row.type} {options}".strip(),
                      "×".join(map(str, row.output_shape)), f"{row.parameters:,}", row.formula))
    total = sum(row.parameters for row in rows)
    return (
        f"<p>{html.escape(arch.name)}: {len(rows)} layers, {total:,} parameters. A convolution "
        "or pooling layer turns a side of <var>n</var> pixels into "
        "<var>o</var> = ⌊(<var>n</var> + 2<var>p</var> − <var>d</var>(<var>k</var> − 1) − 1) / "
        "<var>s</var>⌋ + 1 (kernel <var>k</var>, padding <var>p</var>, stride <var>s</var>, "
        "dilation <var>d</var>); the last column puts the numbers in.</p>"
        + _table(["#", "layer", "output", "parameters", "formula"], lines, numeric_from=3)
    )


def _curves_section(history: list[dict]) -> str:
    if not history:
        return "<p>The run has no completed epoch.</p>"
    epochs = [row["epoch"] for row in history]

    def series(key: str, scale: float = 1.0) -> list[float | None]:
        return [None if row.get(key) is None else scale * row[key] for row in history]

    charts = [
        _line_chart("Loss", epochs, {"training": series("train_loss"),
                                     "validation": series("val_loss")}, "loss"),
        _line_chart("Accuracy (%)", epochs, {"training": series("train_accuracy", 100),
                                             "validation": series("val_accuracy", 100)},
                    "accuracy (%)"),
        _line_chart("Learning rate", epochs, {"learning rate": series("lr")}, "learning rate"),
    ]
    return ('<p class="hint">Hover or focus (Tab) a point to read its value.</p>'
            f'<div class="charts">{"".join(charts)}</div>')


def _format_number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _line_chart(title: str, xs: Sequence[float], series: dict[str, list[float | None]],
                y_label: str) -> str:
    """An SVG line chart; every point is focusable and carries its value as a tooltip."""
    width, height, left, right, top, bottom = 360, 230, 56, 12, 10, 40
    present = {name: values for name, values in series.items()
               if any(v is not None and math.isfinite(v) for v in values)}
    finite = [v for values in present.values() for v in values
              if v is not None and math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - (abs(low) or 1) * 0.1, high + (abs(high) or 1) * 0.1
    x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def x_of(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (width - left - right)

    def y_of(y: float) -> float:
        return top + (high - y) / (high - low) * (height - top - bottom)

    parts = [f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" '
             f'y2="{height - bottom}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" '
             f'y2="{height - bottom}"/>']
    for tick in np.linspace(low, high, 5):
        y = y_of(tick)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" '
                     f'y2="{y:.1f}"/><text class="tick" x="{left - 4}" y="{y + 3:.1f}" '
                     f'text-anchor="end">{_format_number(tick)}</text>')
    step = max(1, math.ceil(len(xs) / 10))
    for x in xs[::step]:
        parts.append(f'<text class="tick" x="{x_of(x):.1f}" y="{height - bottom + 14}" '
                     f'text-anchor="middle">{x:g}</text>')
    parts.append(f'<text class="label" x="{(left + width - right) / 2}" y="{height - 6}" '
                 'text-anchor="middle">epoch</text>')
    legend = []
    for number, (name, values) in enumerate(present.items()):
        colour = _COLOURS[number]
        points = [(x, y) for x, y in zip(xs, values) if y is not None and math.isfinite(y)]
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{path}"/>')
        for x, y in points:
            tip = f"epoch {x:g}, {name}: {_format_number(y)}"
            parts.append(f'<circle class="point" tabindex="0" cx="{x_of(x):.1f}" '
                         f'cy="{y_of(y):.1f}" r="4" fill="{colour}" data-tip="{tip}" '
                         f'aria-label="{tip}"><title>{tip}</title></circle>')
        legend.append(f'<span><i style="background:{colour}"></i>{html.escape(name)}</span>')
    return (f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>'
            f'<svg viewBox="0 0 {width} {height}" role="group" '
            f'aria-label="{html.escape(title)} per epoch">{"".join(parts)}</svg>'
            f'<div class="legend">{"".join(legend)}</div></figure>')


def _metrics_section(page: _Page, test: _TestResults) -> str:
    from cnnkit.evaluation import confusion_matrix

    count = len(page.class_names)
    confusion = confusion_matrix(test.labels, test.predictions, count)
    diagonal = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(diagonal, predicted, out=np.zeros(count), where=predicted > 0)
    recall = np.divide(diagonal, support, out=np.zeros(count), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(count), where=total > 0)
    rows = [(name, f"{100 * p:.1f}%", f"{100 * r:.1f}%", f"{100 * f:.1f}%", f"{s:,}")
            for name, p, r, f, s in zip(page.class_names, precision, recall, f1, support)]
    rows.append(("mean over classes", f"{100 * precision.mean():.1f}%",
                 f"{100 * recall.mean():.1f}%", f"{100 * f1.mean():.1f}%",
                 f"{int(support.sum()):,}"))
    accuracy = float(diagonal.sum() / max(1, confusion.sum()))
    page.confusion = confusion
    return (f"<p>{test.split.capitalize()} split, {len(test.labels):,} images: accuracy "
            f"<strong>{100 * accuracy:.2f}%</strong>. Precision: of the images predicted as the "
            "class, the share that are; recall: of the images of the class, the share found; "
            "F1: their harmonic mean.</p>"
            + _table(["class", "precision", "recall", "F1", "images"], rows))


def _confusion_section(page: _Page, test: _TestResults) -> str:
    confusion = page.confusion
    names = page.class_names
    cells: dict[str, list[list[float]]] = {}
    for true in range(len(names)):
        for predicted in range(len(names)):
            members = np.flatnonzero((test.labels == true) & (test.predictions == predicted))
            if not len(members):
                continue
            chosen = members[np.argsort(-test.confidence[members], kind="stable")[:_CELL_IMAGES]]
            cells[f"{true},{predicted}"] = [[int(i), round(float(test.confidence[i]), 3)]
                                            for i in chosen]
            for index in chosen:
                page.image(test, index)
    page.data["cells"] = cells
    off_diagonal = confusion - np.diag(np.diag(confusion))
    start = np.unravel_index(off_diagonal.argmax(), confusion.shape) if off_diagonal.any() else (
        0, 0)
    row_totals = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    head = "".join(f'<th scope="col" class="rot"><span>{html.escape(n)}</span></th>'
                   for n in names)
    rows = []
    for true, name in enumerate(names):
        tds = []
        for predicted in range(len(names)):
            count = int(confusion[true, predicted])
            share = confusion[true, predicted] / row_totals[true, 0]
            label = (f"true {name}, predicted {names[predicted]}: {count} image"
                     f"{'s' if count != 1 else ''}")
            shade = f"rgba(31,119,180,{0.08 + 0.92 * share:.3f})" if count else "transparent"
            ink = "#fff" if share > 0.5 else "#111"
            pressed = "true" if (true, predicted) == tuple(start) else "false"
            tds.append(
                f'<td><button type="button" class="cell" data-true="{true}" '
                f'data-pred="{predicted}" aria-pressed="{pressed}" '
                f'aria-label="{html.escape(label)}" '
                f'style="background:{shade};color:{ink}"{" disabled" if not count else ""}>'
                f"{count}</button></td>")
        rows.append(f'<tr><th scope="row">{html.escape(name)}</th>{"".join(tds)}</tr>')
    table = (f'<table class="confusion"><caption>Rows: true class; columns: predicted class. '
             f'Shade: share of the row.</caption><thead><tr><td></td>{head}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>')
    gallery = _cell_gallery(page, test, *map(int, start))
    return (f'<p class="hint">Click a cell (or Tab to it and press Enter) to see its images, '
            f"the most confident first (up to {_CELL_IMAGES}).</p>"
            f'<div class="confusion-view">{table}<div id="cell-view" aria-live="polite">'
            f"{gallery}</div></div>")


def _cell_gallery(page: _Page, test: _TestResults, true: int, predicted: int) -> str:
    """The images of one cell, as the page first shows them (the script redraws this)."""
    names = page.class_names
    members = page.data["cells"].get(f"{true},{predicted}", [])
    count = int(page.confusion[true, predicted])
    figures = "".join(
        f'<figure class="thumb" data-true="{true}" data-pred="{predicted}">'
        f'<img src="{page.image(test, index)}" alt="test image {index}">'
        f"<figcaption>#{index} · {100 * confidence:.0f}%</figcaption></figure>"
        for index, confidence in members)
    return (f'<h3 id="cell-title">True {html.escape(names[true])}, predicted '
            f"{html.escape(names[predicted])}: {len(members)} of {count} shown</h3>"
            f'<div class="gallery">{figures}</div>')


def _wrong_section(page: _Page, test: _TestResults) -> str:
    wrong = np.flatnonzero(test.predictions != test.labels)
    if not len(wrong):
        return "<p>No test image is misclassified.</p>"
    chosen = wrong[np.argsort(-test.confidence[wrong], kind="stable")[:_WRONG_IMAGES]]
    names = page.class_names
    cards = []
    for index in chosen:
        top = np.argsort(-test.probabilities[index], kind="stable")[:3]
        ranked = "".join(f"<li>{html.escape(names[c])} {100 * test.probabilities[index, c]:.1f}%"
                         "</li>" for c in top)
        cards.append(
            f'<figure class="card"><img src="{page.image(test, index)}" '
            f'alt="test image {index}, a {html.escape(names[test.labels[index]])}">'
            f"<figcaption>#{index}: true <strong>{html.escape(names[test.labels[index]])}"
            f"</strong><ol>{ranked}</ol></figcaption></figure>")
    return (f"<p>{len(wrong):,} of {len(test.labels):,} test images are misclassified; these "
            f"{len(chosen)} with the highest confidence in the wrong class, with the top 3.</p>"
            f'<div class="cards">{"".join(cards)}</div>')


def _kernel_cards(kernels: np.ndarray, comparisons: list) -> str:
    table = colour_table("RdBu_r")
    cards = []
    for kernel, comparison in zip(kernels, comparisons, strict=True):
        extent = float(np.abs(kernel).max()) or 1.0
        picture = coloured(kernel, table, -extent, extent)
        label = html.escape(comparison.label)
        close = " close" if comparison.close else ""
        cards.append(
            f'<figure class="kernel{close}"><img src="{png_data_uri(picture)}" alt="kernel '
            f'{comparison.index}: {label}"><figcaption>{comparison.index}: {label}'
            "</figcaption></figure>")
    return f'<div class="kernels">{"".join(cards)}</div>'


def _kernels_section(model: TrainedModel) -> str:
    from cnnkit.evidence import CLOSE_PERCENTILE, summarise_kernels

    if not model.info.conv_layers:
        return "<p>The network has no convolution layer.</p>"
    summary = summarise_kernels(model)
    kernels = summary.kernels
    channels = (f", summed over its {kernels.shape[1]} input channels"
                if kernels.shape[1] > 1 else "")
    out = len(kernels)
    (trained95, before95), (trained99, before99) = summary.counts(95), summary.counts(99)
    then = ("" if before95 is None else
            f" At initialisation {before95} and {before99} did (shown below).")
    initial = ("<p>The run did not keep its weights at initialisation.</p>"
               if summary.initial is None else
               "<h3>The same kernels at initialisation</h3>"
               + _kernel_cards(summary.initial_kernels.sum(axis=1), summary.initial))
    return (f"<p>{html.escape(summary.name)} (layer {summary.layer}): {out} kernels of "
            f"{kernels.shape[2]}×{kernels.shape[3]}{channels}, red positive and blue "
            "negative, each on its own scale. Each is labelled with the classic kernel it "
            "resembles most (Sobel, Scharr and Prewitt in four directions, Laplacian, Gaussian, "
            "box, identity), the cosine similarity after removing the mean (− marks the negated "
            "kernel: an edge detector for the opposite direction) and the share of randomly "
            "initialised kernels that resemble a classic kernel less. Random kernels are the "
            f"baseline ({html.escape(summary.baseline.describe())}): below the "
            f"{CLOSE_PERCENTILE:.0f}th percentile a kernel has <em>no close match</em>.</p>"
            f"<p><strong>{trained95} of {out}</strong> beat the random 95th percentile and "
            f"<strong>{trained99}</strong> the 99th, where chance gives about "
            f"{0.05 * out:.1f} and {0.01 * out:.1f}.{then}</p>"
            + _kernel_cards(kernels.sum(axis=1), summary.trained) + initial)


def _patches_section(model: TrainedModel, test: _TestResults, limit: int = 2000) -> str:
    from cnnkit.evidence import mosaic_columns, patch_mosaic, top_patches

    images = test.images[:limit]
    blocks = []
    for layer in model.info.conv_layers:
        channels = top_patches(model, images, layer, per_channel=8)
        rows, columns = model.info.receptive_fields()[layer]
        picture = patch_mosaic(channels, columns=mosaic_columns(len(channels)))
        name = html.escape(model.info.names[layer])
        blocks.append(
            f'<figure class="patches"><img class="px" src="{png_data_uri(picture)}" '
            f'alt="top patches of every channel of {name}"><figcaption>{name}: '
            f"{len(channels)} channels, each a row of the 8 patches ({rows.size}×"
            f"{columns.size} pixels, the receptive field) that excite it most, strongest "
            "first; channels run down the columns.</figcaption></figure>")
    return (f"<p>What a filter responds to, shown the standard way: for every channel of every "
            f"convolution, the parts of the first {len(images):,} {test.split} images where it "
            "is most active, each cut to the channel's receptive field (what lies beyond the "
            "image is the layer's padding). First-layer channels answer to small edges and "
            "spots; deeper channels to larger strokes and shapes.</p>" + "".join(blocks))


def _sanity_section(model: TrainedModel, test: _TestResults, count: int = 8) -> str:
    from cnnkit.evidence import SANITY_THRESHOLD, cascading_randomisation

    steps = cascading_randomisation(model, test.images[:count])
    methods = list(steps[0].correlations)
    rows = [(step.randomised, *(f"{step.correlations[m]:.2f}" for m in methods))
            for step in steps]
    verdicts = []
    for method in methods:
        final, passed = steps[-1].correlations[method], steps[-1].passed(method)
        verdicts.append(f"<li><strong>{method}</strong>: {'passes' if passed else 'FAILS'} "
                        f"(rank correlation {final:.2f} with every layer randomised; its size "
                        f"is {'below' if passed else 'not below'} {SANITY_THRESHOLD})</li>")
    return ("<p>Adebayo et al. (2018) showed that some attribution methods draw the same maps "
            "for a trained and an untrained network: they explain the input, not the model. "
            "The check: re-initialise the layers from the last one down, one more each row, "
            f"and compare each method's maps of the first {count} test images with the trained "
            "model's (Spearman rank correlation, averaged; 1 means unchanged, −1 mirrored). A "
            "method that depends on what the network learned falls towards 0. (The second "
            "check, a model trained on shuffled labels, runs with cnnkit explain RUN IMAGE "
            "--sanity-check.)</p>"
            + _table(["randomised", *methods], rows) + f"<ul>{''.join(verdicts)}</ul>")


def _examples_section(page: _Page, model: TrainedModel, test: _TestResults,
                      per_class: int) -> str:
    from cnnkit.featuremaps import ROUNDING, map_steps

    info = model.info
    chosen = [int(i) for c in range(len(page.class_names))
              for i in np.flatnonzero(test.labels == c)[:per_class]]
    if not chosen:
        return "<p>No test images.</p>"
    inputs = model.normalise(test.images[chosen])
    layers = info.shown_layers()
    stored = info.spatial_layers  # every map a shown map is made from, and the shown ones
    maps, _ = model.layer_outputs(inputs, stored)
    targets = test.predictions[chosen]
    baseline = model.normalise(np.zeros((1, *info.input_shape), np.uint8))
    attributions = {method: model.attribute(inputs, targets, method=method, baseline=baseline)
                    for method in METHODS}
    steps = map_steps(model)
    groups = _stored_groups([-1, *stored], [info.input_shape,
                                            *(info.layers[i].output_shape for i in stored)])
    page.data["featuremaps"] = {
        "input_shape": list(info.input_shape), "groups": groups, "rounding": ROUNDING,
        "quantum": _QUANTUM, "viridis": base64.b64encode(colour_table("viridis")).decode(),
        "layers": {str(i): _step_data(steps[i], info.layers[i].output_shape) for i in stored},
        "weights": _packed([array.astype("<f4").tobytes() for i in stored
                            if steps[i].weight is not None
                            for array in (steps[i].weight, steps[i].bias)]),
        "examples": {}}
    names = page.class_names
    blocks = []
    for n, index in enumerate(chosen):
        gray = as_picture(test.images[index]).astype(np.float64)
        if gray.ndim == 3:
            gray = gray.mean(axis=2)
        overlays = []
        for method in METHODS:
            flat = flat_map(attributions[method][n])
            if flat:
                overlays.append(f'<figure class="flat-attribution"><div>{flat}</div>'
                                f"<figcaption>{method}</figcaption></figure>")
                continue
            blend = attribution_overlay(attributions[method][n], gray, method)
            overlays.append(f'<figure><img class="px" src="{png_data_uri(blend)}" alt="{method} of '
                            f'test image {index}"><figcaption>{method}</figcaption></figure>')
        arrays = {-1: inputs[n], **{layer: maps[layer][n] for layer in stored}}
        page.data["featuremaps"]["examples"][str(index)] = {
            "maps": _packed([part for group in groups
                             for part in _quantised([arrays[i] for i in group])]),
            "flat": {f"{layer}:{channel}": note for layer in stored
                     for channel, values in enumerate(arrays[layer])
                     if (note := flat_map(values))}}
        tiles = []
        for layer in layers:
            count, height, width = maps[layer][n].shape
            name = html.escape(info.names[layer])
            tiles.append(
                f'<figure class="maps"><figcaption>{name} (layer {layer}: '
                f"{info.layers[layer].type}): {count} maps of {height}×{width}, one colour "
                f'scale</figcaption><div class="fm-tiles" role="group" data-layer="{layer}" '
                f'aria-label="{name}: {count} maps of test image {index}"></div></figure>')
        label, predicted = names[test.labels[index]], names[targets[n]]
        verdict = "right" if test.labels[index] == targets[n] else "wrong"
        blocks.append(
            f'<article class="example" data-example="{index}"><h3>#{index}: '
            f"{html.escape(label)} → predicted {html.escape(predicted)} ({verdict}, "
            f"{100 * test.confidence[index]:.0f}%)</h3>"
            f'<div class="row"><figure><img class="px" src="{page.image(test, index)}" '
            f'alt="test image {index}"><figcaption>image</figcaption></figure>'
            f'{"".join(overlays)}</div><div class="layers">{"".join(tiles)}</div>'
            '<div class="fm-detail" hidden></div></article>')
    return ("<p>For the first test images of each class: the image, three attributions of the "
            "predicted class (saliency: the gradient's size; Grad-CAM on the last convolution; "
            "integrated gradients from a black image, red adding to the score and blue taking "
            "away) and the feature maps after each activation and pooling, one colour scale "
            "per layer, each labelled with its filter (channel) number.</p>"
            '<p class="hint">Click a map (or Tab to a layer, move with the arrow keys and press '
            "Enter) to see it large with the kernels or the map and operation that made it; "
            "then click one of its pixels (or use the arrow keys) to see the window of the "
            "input it is computed from, the products and their sum, next to the network's "
            "value.</p><noscript><p>The feature maps are drawn by the page's script.</p>"
            "</noscript>" + "".join(blocks))


#: Stored feature-map values are int16: ``round(value / scale * _QUANTUM)``, one scale per
#: channel (its largest magnitude), so each value keeps 1/32767 of its channel's range.
_QUANTUM = 32767


def _packed(parts: Sequence[bytes]) -> str:
    """Bytes deflated (zlib) and in base64: how the page embeds arrays of numbers; its script
    inflates them with the browser's own ``DecompressionStream``."""
    return base64.b64encode(zlib.compress(b"".join(parts), 9)).decode("ascii")


def _stored_groups(keys: list[int], shapes: list[Sequence[int]]) -> list[list[int]]:
    """The arrays ``keys`` in runs of one shape (a convolution and its activation): a run is
    stored channel by channel together, so that deflate finds the activation's values in the
    convolution's, a few hundred bytes back.

    >>> _stored_groups([-1, 0, 1, 2], [(1, 4, 4), (3, 4, 4), (3, 4, 4), (3, 2, 2)])
    [[-1], [0, 1], [2]]
    """
    groups: list[list[int]] = []
    for key, shape, before in zip(keys, shapes, [None, *shapes]):
        if before is not None and tuple(shape) == tuple(before):
            groups[-1].append(key)
        else:
            groups.append([key])
    return groups


def _quantised(arrays: Sequence[np.ndarray]) -> list[bytes]:
    """Arrays ``(C, H, W)`` of one shape as the page stores them: one float32 scale per channel
    (the largest magnitude over the arrays), then channel by channel each array's values as
    little-endian int16 (see :data:`_QUANTUM`)."""
    stack = np.stack([np.asarray(a, np.float32) for a in arrays], axis=1)  # (C, arrays, H, W)
    scales = np.abs(stack).max(axis=(1, 2, 3))
    scales[scales == 0] = 1.0
    quantised = np.rint(stack / scales[:, None, None, None] * _QUANTUM).astype("<i2")
    return [scales.astype("<f4").tobytes(), quantised.tobytes()]


def _step_data(step, shape: Sequence[int]) -> dict:
    """What the page's script needs of a layer to show one of its maps in detail."""
    data = {**step.to_json(), "shape": list(shape),
            "texts": [step.describe(channel) for channel in range(shape[0])]}
    if step.scale is not None:
        data.update(scale=step.scale.tolist(), shift=step.shift.tolist())
    return data


def _pca_section(page: _Page, test: _TestResults) -> str:
    from cnnkit.explain import pca_2d

    rng = np.random.default_rng(0)
    chosen = np.sort(np.concatenate([
        rng.permutation(np.flatnonzero(test.labels == c))[:_PCA_PER_CLASS]
        for c in range(len(page.class_names))]))
    coordinates, explained = pca_2d(test.features[chosen])
    width, height, margin = 560, 440, 12
    low, high = coordinates.min(axis=0), coordinates.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = margin + (coordinates - low) / span * [width - 2 * margin, height - 2 * margin]
    names = page.class_names
    points = []
    for (x, y), index in zip(scaled, chosen):
        label = int(test.labels[index])
        page.image(test, index)
        points.append(
            f'<circle cx="{x:.1f}" cy="{height - y:.1f}" r="3.2" '
            f'fill="{_COLOURS[label % len(_COLOURS)]}" data-i="{index}" '
            f'data-label="{label}" data-pred="{int(test.predictions[index])}"/>')
    legend = "".join(f'<span><i style="background:{_COLOURS[c % len(_COLOURS)]}"></i>'
                     f"{html.escape(name)}</span>" for c, name in enumerate(names))
    return (
        f"<p>The {len(chosen):,} test images below (up to {_PCA_PER_CLASS} per class) placed by "
        "the first two principal components of the penultimate layer's features, which "
        f"explain {100 * explained[0]:.1f}% and {100 * explained[1]:.1f}% of their variance; "
        "classes the network separates form separate clouds.</p>"
        '<p class="hint" id="pca-help">Hover a point to see its image, or focus the map (Tab) '
        "and step through the points with the arrow keys.</p>"
        '<div class="pca-view"><svg id="pca-map" tabindex="0" role="application" '
        f'aria-describedby="pca-help" aria-label="Feature map of test images" '
        f'viewBox="0 0 {width} {height}">{"".join(points)}</svg>'
        '<figure id="pca-point" aria-live="polite"><img class="px" alt="" hidden>'
        "<figcaption>No point chosen.</figcaption></figure></div>"
        f'<div class="legend">{legend}</div>'
    )


# --- Style and script ------------------------------------------------------------------------

_STYLE = """
:root{--ink:#111;--muted:#555;--line:#ccc;--accent:#1f77b4;font-family:system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fff}
body{margin:0 auto;max-width:1100px;padding:0 1rem 3rem;line-height:1.45}
h1{font-size:1.6rem;margin:1rem 0 .5rem}h2{font-size:1.3rem;border-bottom:1px solid var(--line);
padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1rem;margin:.8rem 0 .4rem}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4rem 1rem;margin:0}
a{color:var(--accent)}.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;
background:#fff;padding:.3rem}
:focus-visible{outline:3px solid #e377c2;outline-offset:2px}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}caption{text-align:left;
font-weight:600;padding:.2rem 0}th,td{border-bottom:1px solid var(--line);padding:.25rem .6rem;
text-align:left;vertical-align:top}.num{text-align:right;font-variant-numeric:tabular-nums}
.hint,.note{color:var(--muted);font-size:.9rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{margin:0;width:360px}.chart svg{width:100%}
.chart figcaption{font-weight:600}
.axis{stroke:#333}.grid{stroke:#eee}.tick{font-size:10px;fill:#444}.label{font-size:11px}
.point{cursor:pointer}.point:hover,.point:focus{stroke:#000;stroke-width:2}
.legend{display:flex;flex-wrap:wrap;gap:.2rem .9rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;border-radius:2px}
#tip{position:absolute;background:#222;color:#fff;padding:.2rem .45rem;border-radius:3px;
font-size:.8rem;pointer-events:none;z-index:10}
.confusion-view{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
.confusion td,.confusion th{border:none;padding:1px}
.confusion th[scope=row]{padding-right:.4rem;font-weight:500;white-space:nowrap}
.rot{height:6.5rem;vertical-align:bottom}.rot span{display:inline-block;writing-mode:vertical-rl;
transform:rotate(180deg);font-weight:500}
button.cell{width:3.1rem;height:2.2rem;border:1px solid #ddd;font:inherit;font-size:.8rem;
cursor:pointer;border-radius:2px}button.cell[aria-pressed=true]{outline:3px solid #d62728}
button.cell:disabled{cursor:default;color:#bbb!important}
#cell-view{flex:1;min-width:260px}
.gallery,.cards,.kernels{display:flex;flex-wrap:wrap;gap:.5rem}
figure{margin:0}.thumb img,.card img,.px{image-rendering:pixelated}
.thumb img{width:56px;height:56px}.thumb figcaption{font-size:.7rem;color:var(--muted)}
.card{width:150px;border:1px solid var(--line);padding:.4rem;border-radius:4px}
.card img{width:84px;height:84px}.card figcaption{font-size:.8rem}.card ol{margin:.2rem 0 0;
padding-left:1.2rem}
.kernel{width:92px;text-align:center}.kernel.close img{outline:3px solid #2ca02c}
.patches img{width:100%;max-width:60rem}.kernel img{width:64px;height:64px;
image-rendering:pixelated}.kernel figcaption{font-size:.7rem}
.example{border-top:1px solid var(--line);padding:.3rem 0}.row{display:flex;flex-wrap:wrap;
gap:.6rem;align-items:flex-end}.row figure{text-align:center;font-size:.75rem}
.row img.px{width:84px;height:84px}
.maps{margin:.35rem 0}.maps figcaption{font-size:.8rem;color:var(--muted);margin-bottom:.1rem}
.fm-tile canvas{width:42px;height:42px}
.flat-attribution div{width:84px;height:84px;display:flex;align-items:center;text-align:center;
justify-content:center;border:1px dashed var(--line);font-size:.7rem;color:var(--muted)}
.pca-view{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
#pca-map{width:560px;max-width:100%;border:1px solid var(--line)}
#pca-map circle{opacity:.75}#pca-map circle.current{stroke:#000;stroke-width:2;opacity:1}
#pca-point img{width:112px;height:112px}#pca-point{width:180px}
@media print{nav,.hint,.skip,#tip{display:none}body{max-width:none;font-size:10pt}
section{break-inside:auto}figure,table,svg,.example{break-inside:avoid}h2{break-after:avoid}
a{color:inherit;text-decoration:none}}
"""

_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var tip = document.getElementById("tip");
  function showTip(element) {
    var box = element.getBoundingClientRect();
    tip.textContent = element.getAttribute("data-tip");
    tip.hidden = false;
    tip.style.left = (window.scrollX + box.left + box.width / 2 + 8) + "px";
    tip.style.top = (window.scrollY + box.top - 30) + "px";
  }
  function hideTip() { tip.hidden = true; }
  document.querySelectorAll("[data-tip]").forEach(function (element) {
    element.addEventListener("mouseenter", function () { showTip(element); });
    element.addEventListener("focus", function () { showTip(element); });
    element.addEventListener("mouseleave", hideTip);
    element.addEventListener("blur", hideTip);
  });

  var view = document.getElementById("cell-view");
  function showCell(button) {
    var row = button.getAttribute("data-true"), column = button.getAttribute("data-pred");
    var members = (data.cells || {})[row + "," + column] || [];
    document.querySelectorAll("button.cell").forEach(function (other) {
      other.setAttribute("aria-pressed", other === button ? "true" : "false");
    });
    var title = document.createElement("h3");
    title.id = "cell-title";
    title.textContent = "True " + data.classes[row] + ", predicted " + data.classes[column] +
      ": " + members.length + " of " + button.textContent + " shown";
    var gallery = document.createElement("div");
    gallery.className = "gallery";
    members.forEach(function (member) {
      var figure = document.createElement("figure");
      figure.className = "thumb";
      figure.setAttribute("data-true", row);
      figure.setAttribute("data-pred", column);
      var image = document.createElement("img");
      image.src = data.images[member[0]];
      image.alt = "test image " + member[0];
      var caption = document.createElement("figcaption");
      caption.textContent = "#" + member[0] + " \\u00b7 " + Math.round(100 * member[1]) + "%";
      figure.appendChild(image);
      figure.appendChild(caption);
      gallery.appendChild(figure);
    });
    view.replaceChildren(title, gallery);
  }
  document.querySelectorAll("button.cell").forEach(function (button) {
    button.addEventListener("click", function () { showCell(button); });
  });

  var map = document.getElementById("pca-map");
  if (map) {
    var points = Array.prototype.slice.call(map.querySelectorAll("circle"));
    var panel = document.getElementById("pca-point");
    var picture = panel.querySelector("img"), caption = panel.querySelector("figcaption");
    var current = -1;
    var showPoint = function (number) {
      if (current >= 0) { points[current].classList.remove("current"); }
      current = (number + points.length) % points.length;
      var point = points[current];
      point.classList.add("current");
      picture.src = data.images[point.getAttribute("data-i")];
      picture.alt = "test image " + point.getAttribute("data-i");
      picture.hidden = false;
      caption.textContent = "#" + point.getAttribute("data-i") + ": " +
        data.classes[point.getAttribute("data-label")] + ", predicted " +
        data.classes[point.getAttribute("data-pred")];
    };
    points.forEach(function (point, number) {
      point.addEventListener("mouseenter", function () { showPoint(number); });
    });
    map.addEventListener("keydown", function (event) {
      var step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[event.key];
      if (step) { event.preventDefault(); showPoint(current < 0 ? 0 : current + step); }
    });
  }
})();
"""


@functools.cache
def _shared(name: str) -> str:
    """A file the page of ``cnnkit serve`` shares with the report (the detail of one feature
    map: its script and style), read from the package to be inlined."""
    return (Path(__file__).parent / "serve" / "static" / name).read_text(encoding="utf-8")


# The feature maps of the examples: the page inflates each example's stored maps, draws them
# as tiles, and shows one in detail (featuremaps.js draws it) with a pixel written out. The
# numbers are cnnkit's (the network's outputs and the checkpoint's weights, as stored above);
# this script reads windows out of them as cnnkit.featuremaps.explain_pixel does, and adds up
# what it shows, for the page to set beside the network's value.
_MAPS_SCRIPT = """
(() => {
  "use strict";
  const maps = JSON.parse(document.getElementById("report-data").textContent).featuremaps;
  if (!maps) return;
  const reason = "the network computes in float32, and the report stores each map to 1/" +
    maps.quantum + " of its channel's largest value";

  function bytes(text) {
    const raw = atob(text), out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
    return out;
  }
  async function inflate(text) {
    const stream = new Blob([bytes(text)]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new DataView(await new Response(stream).arrayBuffer());
  }
  const viridis = bytes(maps.viridis);
  const layerOf = (key) => key < 0 ? {shape: maps.input_shape, name: "input"} : maps.layers[key];

  // Each stored array: {shape, scales, values (C*H*W float64)}, by layer (-1: the input).
  async function decode(text) {
    const view = await inflate(text);
    const arrays = {};
    let offset = 0;
    maps.groups.forEach((group) => {
      const [channels, height, width] = layerOf(group[0]).shape, size = height * width;
      const scales = [];
      for (let c = 0; c < channels; c += 1, offset += 4) scales.push(view.getFloat32(offset, true));
      group.forEach((key) => {
        arrays[key] = {shape: [channels, height, width], scales,
                       values: new Float64Array(channels * size)};
      });
      for (let c = 0; c < channels; c += 1) {
        group.forEach((key) => {
          const values = arrays[key].values, unit = scales[c] / maps.quantum;
          for (let i = 0; i < size; i += 1, offset += 2) {
            values[c * size + i] = view.getInt16(offset, true) * unit;
          }
        });
      }
    });
    return arrays;
  }

  // The convolutions' weights and biases, float32 as the checkpoint holds them.
  const weights = inflate(maps.weights).then((view) => {
    const result = {};
    let offset = 0;
    const read = (count) => {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i += 1, offset += 4) out[i] = view.getFloat32(offset, true);
      return out;
    };
    Object.keys(maps.layers).map(Number).sort((a, b) => a - b).forEach((key) => {
      const layer = maps.layers[key];
      if (layer.operation !== "convolution") return;
      const inputs = layerOf(layer.source).shape[0] / layer.groups;
      const [rows, columns] = layer.kernel_size;
      result[key] = {weight: read(layer.shape[0] * inputs * rows * columns),
                     bias: read(layer.shape[0]), inputs};
    });
    return result;
  });

  function channelOf(array, channel) {
    const [, height, width] = array.shape, size = height * width;
    return array.values.subarray(channel * size, (channel + 1) * size);
  }

  // One map on a canvas, coloured on [low, high] through viridis (the colour scale of the
  // layer for a tile, the map's own when enlarged).
  function draw(values, height, width, low, high) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d"), image = context.createImageData(width, height);
    const span = high > low ? high - low : 1;
    values.forEach((value, i) => {
      const at = 3 * Math.min(255, Math.max(0, Math.round((value - low) / span * 255)));
      image.data.set([viridis[at], viridis[at + 1], viridis[at + 2], 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    return canvas;
  }

  function extent(values) {
    let low = Infinity, high = -Infinity;
    values.forEach((value) => { low = Math.min(low, value); high = Math.max(high, value); });
    return [low, high];
  }

  function entry(example, key, channel) {
    const array = example.arrays[key], values = channelOf(array, channel);
    const [low, high] = extent(values);
    return {values, shape: array.shape.slice(1), min: low, max: high,
            flat: example.flat[key + ":" + channel] || null};
  }

  function inputChannels(layer, channel, count) {
    if (layer.operation !== "convolution") return [channel];
    const perGroup = count / layer.groups;
    const group = Math.floor(channel / (layer.shape[0] / layer.groups));
    return Array.from({length: perGroup}, (_, i) => group * perGroup + i);
  }

  function nested(values, rows, columns) {
    return Array.from({length: rows},
                      (_, r) => Array.from(values.subarray(r * columns, (r + 1) * columns)));
  }

  // The filter's kernels (one per input channel), as the checkpoint holds them.
  function kernelsOf(key, channel, channels, all) {
    const layer = maps.layers[key], [rows, columns] = layer.kernel_size, {inputs} = all[key];
    const kernels = channels.map((source) => {
      const start = ((channel * inputs) + source % inputs) * rows * columns;
      return nested(all[key].weight.subarray(start, start + rows * columns), rows, columns);
    });
    const sum = kernels[0].map((row, r) => row.map((_, c) =>
      kernels.reduce((t, k) => t + k[r][c], 0)));
    return {weights: kernels, sum, bias: all[key].bias[channel], channels};
  }

  // What cnnkit.featuremaps.map_detail answers, from the stored numbers.
  function detailOf(example, key, channel, all) {
    const layer = maps.layers[key], source = example.arrays[layer.source];
    const channels = inputChannels(layer, channel, source.shape[0]);
    const detail = {...layer, channel, channels: layer.shape[0], shape: layer.shape.slice(1),
                    source_shape: source.shape.slice(1), text: layer.texts[channel],
                    map: entry(example, key, channel),
                    sources: channels.map((c) => ({channel: c,
                                                   ...entry(example, layer.source, c)}))};
    if (layer.operation === "convolution") detail.kernels = kernelsOf(key, channel, channels, all);
    if (layer.operation === "batch_norm") {
      detail.scale = layer.scale[channel];
      detail.shift = layer.shift[channel];
    }
    return detail;
  }

  // An input position outside the map, for a padding mode (as cnnkit.ops.pad extends it):
  // the position read instead, or -1 for a zero.
  function padded(i, size, mode) {
    if (i >= 0 && i < size) return i;
    if (mode === "replicate") return i < 0 ? 0 : size - 1;
    if (mode === "circular") return ((i % size) + size) % size;
    if (mode === "reflect") return i < 0 ? -i : 2 * (size - 1) - i;
    if (mode === "symmetric") return i < 0 ? -i - 1 : 2 * size - 1 - i;
    return -1;
  }

  // The window that output (row, column) reads from one input map: the tutorial's loop,
  // start = index * stride - padding, then every dilation-th position.
  function windowOf(layer, values, shape, index, pooling) {
    const [height, width] = shape, [rows, columns] = layer.kernel_size;
    const window = [], padding = [];
    for (let a = 0; a < rows; a += 1) {
      const r = index[0] * layer.stride[0] - layer.pads[0][0] + a * layer.dilation[0];
      const line = [], marks = [];
      for (let b = 0; b < columns; b += 1) {
        const c = index[1] * layer.stride[1] - layer.pads[1][0] + b * layer.dilation[1];
        const outside = r < 0 || c < 0 || r >= height || c >= width;
        let value = null;
        if (!outside) value = values[r * width + c];
        else if (!pooling) {
          const pr = padded(r, height, layer.padding_mode);
          const pc = padded(c, width, layer.padding_mode);
          value = pr < 0 || pc < 0 ? 0 : values[pr * width + pc];
        }
        line.push(value);
        marks.push(outside);
      }
      window.push(line);
      padding.push(marks);
    }
    return {window, padding};
  }

  // A pixel written out as cnnkit.featuremaps.explain_pixel writes it, from the stored numbers;
  // `tolerance` adds how far storing the maps may move the result.
  function explainPixel(example, key, channel, index, all) {
    const layer = maps.layers[key], output = example.arrays[key];
    const input = example.arrays[layer.source], inputShape = input.shape.slice(1);
    const [, height, width] = output.shape;
    const value = output.values[(channel * height + index[0]) * width + index[1]];
    const step = (array, c) => array.scales[c] / maps.quantum / 2;  // half a stored step
    const result = {index, value, start: [index[0] * layer.stride[0], index[1] * layer.stride[1]],
                    origin: [layer.pads[0][0], layer.pads[1][0]]};
    let computed, magnitude, stored = step(output, channel);
    const operation = layer.operation;
    if (operation === "convolution") {
      const kernels = kernelsOf(key, channel, inputChannels(layer, channel, input.shape[0]), all);
      result.channels = kernels.channels.map((source, i) => {
        const {window, padding} = windowOf(layer, channelOf(input, source), inputShape, index,
                                           false);
        result.padding = padding;
        const kernel = kernels.weights[i];
        const products = window.map((row, r) => row.map((v, c) => v * kernel[r][c]));
        stored += kernel.flat().reduce((t, w) => t + Math.abs(w), 0) * step(input, source);
        return {channel: source, window, kernel, products,
                sum: products.flat().reduce((t, p) => t + p, 0)};
      });
      result.bias = kernels.bias;
      computed = result.channels.reduce((t, part) => t + part.sum, 0) + kernels.bias;
      magnitude = result.channels.reduce((t, part) =>
        t + part.products.flat().reduce((u, p) => u + Math.abs(p), 0), Math.abs(kernels.bias));
    } else if (operation === "max" || operation === "avg") {
      const {window, padding} = windowOf(layer, channelOf(input, channel), inputShape, index, true);
      Object.assign(result, {window, padding});
      const present = window.flat().filter((v) => v !== null);
      if (operation === "max") {
        computed = Math.max(...present);
        const at = window.flat().indexOf(computed), columns = layer.kernel_size[1];
        result.chosen = [Math.floor(at / columns), at % columns];
        magnitude = Math.abs(computed);
        stored += step(input, channel);
      } else {
        // PyTorch's divisor: the window's cells inside the padded input (count_include_pad),
        // or inside the input itself.
        const inside = (i, axis) => {
          const size = inputShape[axis], pad = layer.pads[axis][0];
          return layer.count_include_pad ? i >= -pad && i < size + pad : i >= 0 && i < size;
        };
        let divisor = 0;
        for (let a = 0; a < layer.kernel_size[0]; a += 1) {
          for (let b = 0; b < layer.kernel_size[1]; b += 1) {
            const r = index[0] * layer.stride[0] - layer.pads[0][0] + a;
            const c = index[1] * layer.stride[1] - layer.pads[1][0] + b;
            if (inside(r, 0) && inside(c, 1)) divisor += 1;
          }
        }
        result.sum = present.reduce((t, v) => t + v, 0);
        result.divisor = divisor;
        computed = result.sum / divisor;
        magnitude = present.reduce((t, v) => t + Math.abs(v), 0) / divisor;
        stored += present.length * step(input, channel) / divisor;
      }
    } else if (operation === "mean") {
      const values = channelOf(input, channel);
      result.sum = values.reduce((t, v) => t + v, 0);
      result.divisor = values.length;
      computed = result.sum / values.length;
      magnitude = values.reduce((t, v) => t + Math.abs(v), 0) / values.length;
      stored += step(input, channel);
    } else {
      const source = channelOf(input, channel)[index[0] * inputShape[1] + index[1]];
      result.source = source;
      const scale = operation === "batch_norm" ? layer.scale[channel] : 1;
      computed = {relu: Math.max(0, source), tanh: Math.tanh(source),
                  sigmoid: 1 / (1 + Math.exp(-source)), identity: source,
                  batch_norm: source * scale + (layer.shift ? layer.shift[channel] : 0)}[operation];
      magnitude = Math.abs(source * scale);
      stored += Math.abs(scale) * step(input, channel);
    }
    result.computed = computed;
    result.tolerance = maps.rounding * Math.max(magnitude, Math.abs(value)) + stored;
    result.tolerance_reason = reason;
    return result;
  }

  // Each example: inflate its maps, draw the tiles, and open maps in its detail panel.
  document.querySelectorAll("article[data-example]").forEach(async (article) => {
    const stored = maps.examples[article.dataset.example];
    const example = {arrays: await decode(stored.maps), flat: stored.flat};
    const all = await weights;
    const panel = article.querySelector(".fm-detail");
    let opener = null;  // the tile that opened the panel: focus returns there on closing
    const open = (key, channel, pixel, focus) => {
      const detail = detailOf(example, key, channel, all);
      if (pixel) detail.pixel = explainPixel(example, key, channel, pixel, all);
      const big = FeatureMapView.render(panel, detail, {
        picture: (item) => draw(item.values, item.shape[0], item.shape[1], item.min, item.max),
        choose: (chosen) => Promise.resolve(explainPixel(example, key, channel, chosen, all)),
        open: (source, sourceChannel, sourcePixel) =>
          open(source, sourceChannel, sourcePixel, true),
        closed: () => {
          FeatureMapView.mark(article, null, null);
          if (opener) opener.focus();
        },
      });
      FeatureMapView.mark(article, key, channel);
      if (focus) big.focus();
    };
    article.querySelectorAll(".fm-tiles").forEach((tiles) => {
      const key = Number(tiles.dataset.layer), layer = maps.layers[key];
      const array = example.arrays[key];
      const [low, high] = extent(array.values);
      const [count, height, width] = array.shape;
      FeatureMapView.tiles(tiles, {index: key, name: layer.name}, count,
        (channel) => draw(channelOf(array, channel), height, width, low, high),
        (channel) => {
          opener = tiles.querySelector(`[data-channel="${channel}"]`);
          open(key, channel, null, true);
        });
    });
    article.dataset.ready = "true";
  });
})();
"""

"""A walk through the README's cheap commands as written, in order, in an empty folder.

Each command runs through ``main(argv)`` and every number it prints is recomputed with the
library: output sizes and formulas (outsize), layer shapes and parameter counts (summary, checked
by running the NumPy model), result sizes and ranges (filter), weights and sums (kernel), and
every figure's title (read back from the PNG's text) against the command's own arguments. The
numbers in the README's comments (``# 124x124``, ``(3,274,634)``) are checked too.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"
#: Subcommands quick enough to walk (training, evaluation and the demo are tested elsewhere).
CHEAP = ("outsize", "summary", "edges", "filter", "kernel")


def readme_commands() -> list[tuple[str, str]]:
    """(command line, comment) for each cheap ``cnnkit`` line of the README's shell blocks."""
    text = README.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["cnnkit"] and words[1] in CHEAP and "--run" not in words:
                comment = re.search(r"\s#\s(.*)$", line)
                lines.append((line, comment.group(1) if comment else ""))
    return lines


def readme_architecture() -> dict:
    """The README's example architecture file (its ```json block)."""
    text = README.read_text(encoding="utf-8")
    return json.loads(re.search(r"```json\n(.*?)```", text, flags=re.DOTALL).group(1))


def png_text(path: Path) -> dict[str, str]:
    with Image.open(path) as image:
        return dict(image.text)


# --- one checker per command: what it printed, recomputed ----------------------------------


def check_outsize(args, out: str, comment: str) -> None:
    from cnnkit.commands.outsize import _padding, _per_axis
    from cnnkit.shapes import explain_output_size, output_size

    axes = len(args.input)
    per_axis = list(zip(args.input, _per_axis(args.kernel, "kernel", axes),
                        _per_axis(args.stride, "stride", axes), _padding(args.padding, axes),
                        _per_axis(args.dilation, "dilation", axes), strict=True))
    sizes = [output_size(*arguments) for arguments in per_axis]
    lines = out.splitlines()
    if axes == 1:
        assert lines[0] == f"output size: {sizes[0]}"
    else:
        assert lines[0] == f"output shape: {sizes[0]} x {sizes[1]}"
    for line, arguments in zip(lines[1:], per_axis, strict=False):
        assert line.endswith(explain_output_size(*arguments))
    for number in re.findall(r"^\d+", comment):
        assert int(number) in sizes, comment
    if args.plot:
        n, kernel, stride, padding, dilation = per_axis[0]
        text = png_text(Path(args.plot))
        assert text["Title"] == (f"input size {n}, kernel size {kernel}, stride {stride}, "
                                 f"padding {padding}, dilation {dilation}")
        panels = text["Description"].split(" | ")
        asked = [panel for panel in panels if "asked" in panel]
        assert asked == [next(panel for panel in panels if "asked" in panel)]
        assert asked[0].endswith(f"output size {sizes[0]}")
        for panel in panels:
            name = panel.split(" ")[0].rstrip(":")
            if name in ("full", "same", "valid"):
                expected = output_size(n, kernel, stride, name, dilation)
                assert panel.endswith(f"output size {expected}"), panel


def check_summary(args, out: str, comment: str) -> None:
    from cnnkit import nn
    from cnnkit.arch import load_architecture, parse_input_shape

    arch = load_architecture(args.arch)
    input_shape = parse_input_shape(args.input)
    model = nn.build_model(arch, input_shape, args.classes, seed=0)
    # Run the model itself: each printed shape and count is what the layer really produces.
    x = np.zeros((1, *input_shape), np.float32)
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+[a-z]", line)]
    assert len(rows) == len(arch.layers)
    for row, layer in zip(rows, model, strict=True):
        x = layer(x)
        assert row[2] == "x".join(map(str, x.shape[1:])), row
        assert int(row[3].replace(",", "")) == sum(p.data.size for p in layer.parameters()), row
    total = sum(parameter.data.size for parameter in model.parameters())
    assert f"total parameters: {total:,} (trainable {total:,})" in out
    for number in re.findall(r"\d{1,3}(?:,\d{3})+", comment):
        assert int(number.replace(",", "")) == total, comment


def check_edges(args, out: str, comment: str) -> None:
    from cnnkit.commands.edges import edge_title
    from cnnkit.commands.filter import load_input

    image = load_input(args, default_sample="grid", gray=True)
    assert out.strip().endswith(f"(edge figure of a {image.shape[0]}x{image.shape[1]} image)")
    text = png_text(Path(args.output))
    operation = "convolve" if args.convolve else "correlate"
    assert text["Title"] == edge_title(args.size, operation, args.padding_mode)
    assert "response: white > 0, mid-gray 0, black < 0" in text["Description"]


def check_filter(args, out: str, comment: str) -> None:
    from cnnkit.commands.filter import load_input
    from cnnkit.filters import filter_image, parse_kernel

    kernel = parse_kernel(args.kernel)
    result = filter_image(load_input(args), kernel,
                          operation="convolve" if args.convolve else "correlate",
                          padding_mode=args.padding_mode, padding=args.padding)
    rows, columns = result.shape[:2]
    low, high = result.min(), result.max()
    assert f"kernel {kernel.shape[0]}x{kernel.shape[1]}" in out
    assert f"result {rows}x{columns}, range [{low:.4g}, {high:.4g}]" in out
    if args.output.endswith(".npy"):
        np.testing.assert_array_equal(np.load(args.output), result)
    for size in re.findall(r"\d+x\d+", comment):
        assert size == f"{rows}x{columns}", comment


def check_kernel(args, out: str, comment: str) -> None:
    from cnnkit.commands.kernel import _PARAMETERS, kernel_title
    from cnnkit.filters import kernel_defaults, make_kernel

    params = {name: getattr(args, name) for name in _PARAMETERS
              if getattr(args, name) is not None}
    kernel = make_kernel(args.name, **params)
    title = kernel_title(args.name, {**kernel_defaults(args.name), **params}, kernel.shape)
    lines = out.splitlines()
    assert lines[0] == f"{title}, sum {kernel.sum():.6g}"
    printed = [[float(value) for value in line.split()] for line in lines[1:]
               if re.fullmatch(r"[\s\d.e+-]+", line)]
    expected = kernel if len(printed) == kernel.shape[0] else kernel[kernel.shape[0] // 2 :][:1]
    np.testing.assert_allclose(printed, expected, rtol=1e-5)
    for size in re.findall(r"(\d+)x(\d+)", comment):
        assert tuple(map(int, size)) == kernel.shape, comment
    if args.plot:
        assert png_text(Path(args.plot))["Title"] == title


CHECKS = {"outsize": check_outsize, "summary": check_summary, "edges": check_edges,
          "filter": check_filter, "kernel": check_kernel}


def test_readme_commands_print_what_the_library_computes(capsys, tmp_path, monkeypatch):
    """Every cheap README command runs as written, in order, in an empty folder, and each number
    it prints and each figure title it writes equals the library's own computation."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.json").write_text(json.dumps(readme_architecture()))
    commands = readme_commands()
    assert {line.split()[1] for line, _ in commands} == set(CHEAP)
    parser = build_parser()
    for line, comment in commands:
        argv = shlex.split(line, comments=True)[1:]
        assert main(argv) == 0, (line, capsys.readouterr().err)
        out = capsys.readouterr().out
        args = parser.parse_args(argv)
        CHECKS[args.command](args, out, comment)


@pytest.mark.parametrize("engine", ["numpy"])
def test_readme_architecture_file_trains(capsys, tmp_path, monkeypatch, engine):
    """The README's example architecture file is accepted by train as written (one short
    epoch here) and the run's summary names it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.json").write_text(json.dumps(readme_architecture()))
    line = next(line for block in re.findall(r"```sh\n(.*?)```", README.read_text(),
                                             flags=re.DOTALL)
                for line in block.splitlines() if line.startswith("cnnkit train --arch small"))
    argv = [*shlex.split(line, comments=True)[1:], "--epochs", "1", "--train-limit", "300",
            "--val-size", "100", "--engine", engine, "--no-report"]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["summary", "--run", "runs/small"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("architecture 'small', input 1x28x28, 10 classes")
    assert f"trained by the {engine} engine" in out


def test_readme_commands_that_look_inside_a_run(capsys, tmp_path, monkeypatch, trained_run):
    """The README's block on looking inside a trained network runs as written, in order (the
    shared trained run standing in for runs/fashion, a test image for shoe.png), and leaves
    the files its comments name."""
    import shutil

    from cnnkit.data import load_dataset

    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained_run, tmp_path / "runs" / "fashion")
    (tmp_path / "runs" / "fashion").chmod(0o755)
    for path in (tmp_path / "runs" / "fashion").iterdir():
        path.chmod(0o644)
    Image.fromarray(load_dataset("synthetic-digits").test_images[0, 0]).save("shoe.png")
    block = next(block for block in re.findall(r"```bash\n(.*?)```", README.read_text(),
                                               flags=re.DOTALL)
                 if "cnnkit explain runs/fashion shoe.png" in block)
    for line in block.strip().splitlines():
        argv = shlex.split(line, comments=True)[1:]
        assert main(argv) == 0, (line, capsys.readouterr().err)
        out = capsys.readouterr().out
        for name in re.findall(r"[\w/.-]+\.(?:png|html)", line.partition("#")[2]):
            path = Path(name) if "/" in name else Path("runs/fashion") / name
            assert path.is_file(), (line, name)
        if "--sanity-check" in argv:
            assert "shuffled labels" in out
    assert Path("shoe-ig.png").is_file()

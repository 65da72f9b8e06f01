"""``cnnkit explain``: what a trained model sees in an image, and why it predicts what it does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cnnkit.commands.options import (
    add_data_dir_option,
    add_engine_options,
    add_invert_option,
    warning_line,
)
from cnnkit.errors import AlreadyExists
from cnnkit.runfolder import RunFolder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="feature maps, top classes and an attribution map for image files",
        description=(
            "One figure per image: the image as the model sees it (with each conversion step "
            "noted), the top classes, an attribution map over the image and every layer's "
            "feature maps. Example: cnnkit explain runs/fashion shoe.png --method saliency"
        ),
    )
    parser.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-o", "--output", metavar="FIG",
                        help="PNG to write (default: explain-IMAGE.png in the run folder, "
                        "refreshed on every run); with several images, FIG-IMAGE.png for each")
    parser.add_argument("--method", choices=("saliency", "gradcam", "integrated-gradients"),
                        default="gradcam", help="attribution (default gradcam)")
    parser.add_argument("--layer", type=int, metavar="N",
                        help="show only layer N's feature maps, large (Grad-CAM uses it too; "
                        "default: every layer, Grad-CAM on the last convolution)")
    parser.add_argument("--top-k", type=int, default=3, metavar="K",
                        help="classes listed per image (default 3)")
    add_invert_option(parser)
    parser.add_argument("--sanity-check", action="store_true",
                        help="also check the attribution methods on these images (Adebayo et "
                        "al., 2018): randomise the layers from the top down, and train the "
                        "architecture briefly on shuffled labels; a method whose maps do not "
                        "change explains the input, not the model")
    add_data_dir_option(parser, "the training data (--sanity-check)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files named with -o")
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def _figure_paths(run: Path, images: list[str], output: str | None) -> list[Path]:
    stems = [Path(image).stem for image in images]
    if output is None:
        return [RunFolder.of(run).explain_figure(stem) for stem in stems]
    target = Path(output)
    if len(images) == 1:
        return [target]
    return [target.with_name(f"{target.stem}-{stem}.png") for stem in stems]


def run(args: argparse.Namespace) -> int:
    from cnnkit.errors import InvalidArgument
    from cnnkit.explain import explain_images, explanation_figure
    from cnnkit.model import TrainedModel
    from cnnkit.plots import save_figure

    paths = _figure_paths(Path(args.run), args.images, args.output)
    if len(set(paths)) != len(paths):
        raise InvalidArgument("two images share a file name; explain them one at a time with -o")
    # The run's own figures are refreshed; files the user named need --overwrite.
    replace = args.overwrite or args.output is None
    for path in paths:
        if path.exists() and not replace:
            raise AlreadyExists(f"{path} exists; pass --overwrite or choose another -o")
    model = TrainedModel.load(args.run, engine=args.engine, device=args.device)
    explanations = explain_images(model, args.images, method=args.method, layer=args.layer,
                                  top_k=args.top_k, invert=args.invert)
    for explanation, path in zip(explanations, paths, strict=True):
        ranked = ", ".join(
            f"{name} {100 * probability:.1f}%"
            for name, probability in zip(explanation.top_classes,
                                         explanation.top_probabilities, strict=True))
        print(f"{explanation.image.path}: {ranked}")
        for note in explanation.image.notes:
            print(f"  {note}")
        if explanation.image.warnings:
            print(warning_line(explanation.image.path, explanation.image.warnings),
                  file=sys.stderr)
        save_figure(explanation_figure(explanation), path, overwrite=replace)
        print(f"  figure saved to {path}")
    if args.sanity_check:
        pixels = np.stack([explanation.image.pixels for explanation in explanations])
        print("\n".join(_sanity_lines(model, pixels, args)))
    return 0


def _sanity_lines(model, pixels: np.ndarray, args: argparse.Namespace) -> list[str]:
    """The randomisation checks of every method on ``pixels``, as a table."""
    from cnnkit.evaluation import load_split
    from cnnkit.evidence import SANITY_THRESHOLD, cascading_randomisation, label_randomisation

    steps = cascading_randomisation(model, pixels)
    _, _, images, labels = load_split(model.checkpoint, f"the model in {args.run}",
                                      split="train", data_dir=args.data_dir)
    rows = min(len(images), 12_800)
    steps.append(label_randomisation(model, pixels, images[:rows], labels[:rows]))
    methods = list(steps[0].correlations)
    width = max(len(step.randomised) for step in steps)
    lines = [f"sanity check: rank correlation of each method's maps with the trained model's "
             f"(1: unchanged, -1: mirrored; a method passes when its size is below "
             f"{SANITY_THRESHOLD} at the last row of each check)",
             f"  {'randomised':<{width}}  " + "  ".join(f"{m:>20}" for m in methods)]
    lines += [f"  {step.randomised:<{width}}  "
              + "  ".join(f"{step.correlations[m]:>20.2f}" for m in methods) for step in steps]
    for method in methods:
        verdict = [("passes" if step.passed(method) else "FAILS") for step in
                   (steps[-2], steps[-1])]
        lines.append(f"  {method}: {verdict[0]} the layer randomisation, {verdict[1]} the label "
                     "randomisation")
    return lines

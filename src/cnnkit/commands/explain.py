"""``cnnkit explain``: what a trained model sees in an image, and why it predicts what it does."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.commands.options import add_engine_options
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
    parser.add_argument("--invert", choices=("auto", "always", "never"),
                        help="white-on-black conversion: auto judges each picture by its border "
                        "(default auto for digit data sets, never otherwise, as in predict)")
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
    from cnnkit.plots import save_figure

    paths = _figure_paths(Path(args.run), args.images, args.output)
    if len(set(paths)) != len(paths):
        raise InvalidArgument("two images share a file name; explain them one at a time with -o")
    # The run's own figures are refreshed; files the user named need --overwrite.
    replace = args.overwrite or args.output is None
    for path in paths:
        if path.exists() and not replace:
            raise AlreadyExists(f"{path} exists; pass --overwrite or choose another -o")
    explanations = explain_images(args.run, args.images, method=args.method, layer=args.layer,
                                  top_k=args.top_k, invert=args.invert, engine=args.engine,
                                  device=args.device)
    for explanation, path in zip(explanations, paths, strict=True):
        ranked = ", ".join(
            f"{name} {100 * probability:.1f}%"
            for name, probability in zip(explanation.top_classes,
                                         explanation.top_probabilities, strict=True))
        print(f"{explanation.image.path}: {ranked}")
        for note in explanation.image.notes:
            print(f"  {note}")
        save_figure(explanation_figure(explanation), path, overwrite=replace)
        print(f"  figure saved to {path}")
    return 0

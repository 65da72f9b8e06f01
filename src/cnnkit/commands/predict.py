"""``cnnkit predict``: classify image files with a trained model."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify image files with a trained checkpoint",
        description=(
            "Bring each image to the model's input (grayscale or RGB, resized, inverted to "
            "white-on-black for MNIST-style models when its background is light) and print the "
            "most probable classes. Example: cnnkit predict runs/fashion/best.safetensors shoe.png"
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT|RUN_DIR")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=int, default=3, help="classes shown per image (default 3)")
    parser.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                        help="white-on-black conversion (default auto)")
    parser.add_argument("--engine", choices=("numpy", "torch"),
                        help="which engine computes (default: torch where it imports, numpy "
                        "otherwise); either runs a model trained by either")
    parser.add_argument("--device", default="cpu", help="torch: cpu (default), cuda, mps, auto")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.engines.evaluation import predict

    results = predict(args.checkpoint, args.images, top_k=args.top, invert=args.invert,
                      device=args.device, engine=args.engine)
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2))
        return 0
    for result in results:
        note = " (inverted)" if result.inverted else ""
        ranked = ", ".join(
            f"{name} {100 * probability:.1f}%"
            for name, probability in zip(result.classes, result.probabilities, strict=True)
        )
        print(f"{result.path}{note}: {ranked}")
    return 0

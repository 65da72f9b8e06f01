"""Time to 99% MNIST test accuracy: the speedrun recipe against the tutorial's, side by side.

For each seed, the two recipes are trained one after the other (alternating, so that a noisy
machine slows both alike) with ``cnnkit.engines.train``. After every epoch the run's checkpoint
is scored on the 10,000 test images (``TrainedModel.evaluate``), outside the timed part. The
training time is the sum of the epochs' training steps (``epoch_seconds``: no data loading, no
validation, no checkpoint writing); the wall time is the whole ``train`` call. A recipe with a
constant learning rate (the tutorial's) stops at the first epoch that reaches the target, or
after ``--max-epochs``; one with a schedule (the speedrun's cosine decay) runs its epochs to the
end, since stopping it early would train something other than the recipe.

Run: ``python benchmarks/bench_speedrun.py --data-dir DIR`` where DIR holds the four MNIST files
(``cnnkit data fetch mnist`` puts them in the user cache, which is searched without
``--data-dir``). ``--seeds 1 2 3 4 5`` (default), ``--recipes tutorial speedrun`` (default),
``--max-epochs`` bounds the tutorial recipe (default 5).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SOURCE))

from cnnkit.engines.config import TrainConfig  # noqa: E402
from cnnkit.engines.recipes import apply_recipe  # noqa: E402
from cnnkit.engines.training import train  # noqa: E402
from cnnkit.evaluation import load_split  # noqa: E402
from cnnkit.model import TrainedModel  # noqa: E402


def _parse_setting(key: str, text: str) -> object:
    """The value of ``--set KEY TEXT``, of the type of the field's default."""
    default = getattr(TrainConfig(), key)
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise SystemExit(f"--set {key} takes true or false, got {text!r}")
        return text.lower() == "true"
    if isinstance(default, (int, float)):
        return type(default)(text)
    if default is None:  # an optional number (train_limit) or name
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text


def one_run(recipe: str, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    """Train ``recipe`` with ``seed``; the test accuracy and training time after each epoch."""
    given = {"dataset": "mnist", "seed": seed, "data_dir": args.data_dir}
    fields = apply_recipe(recipe, given)
    fields["epochs"] = min(fields.get("epochs", 20), args.max_epochs)
    for key, value in args.set or ():
        fields[key] = _parse_setting(key, value)
    config = TrainConfig(**fields)
    run_dir = folder / f"{recipe}-{seed}"
    epochs: list[dict] = []
    test: dict = {}

    def on_epoch(row: dict, _model) -> bool:
        model = TrainedModel.load(run_dir)
        if "images" not in test:
            _, _, test["images"], test["labels"] = load_split(
                model.checkpoint, str(run_dir), data_dir=args.data_dir, download=False)
        accuracy = model.evaluate(test["images"], test["labels"])["accuracy"]
        spent = sum(epoch["seconds"] for epoch in epochs) + row["epoch_seconds"]
        epochs.append({"epoch": row["epoch"], "seconds": row["epoch_seconds"],
                       "training": spent, "accuracy": accuracy})
        return accuracy >= args.target and config.schedule == "constant"

    started = time.perf_counter()
    train(config, run_dir, evaluate_test=False, on_epoch=on_epoch)
    wall = time.perf_counter() - started
    if config.schedule != "constant":  # only the whole schedule counts
        epochs_counted = epochs[-1:]
    else:
        epochs_counted = epochs
    reached = next((e for e in epochs_counted if e["accuracy"] >= args.target), None)
    return {"recipe": recipe, "seed": seed, "epochs": epochs, "wall": wall,
            "to_target": None if reached is None else reached["training"],
            "final": epochs[-1]["accuracy"], "batch": config.batch_size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="a folder holding the MNIST files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--recipes", nargs="+", default=["tutorial", "speedrun"])
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--set", nargs=2, action="append", metavar=("FIELD", "VALUE"),
                        help="override one setting of every recipe (for trying variants)")
    args = parser.parse_args()
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}; target {100 * args.target:.1f}% on the 10,000 test images")
    results = []
    with tempfile.TemporaryDirectory(prefix="cnnkit-speedrun-") as folder:
        for seed in args.seeds:
            for recipe in args.recipes:
                result = one_run(recipe, seed, args, Path(folder))
                results.append(result)
                trail = ", ".join(f"{100 * e['accuracy']:.2f}% at {e['training']:.1f} s"
                                  for e in result["epochs"])
                print(f"{recipe:<10} seed {seed}: {trail}; wall {result['wall']:.1f} s",
                      flush=True)
    print()
    print("| recipe | batch | seeds | mean test accuracy (last epoch) | runs at target | "
          "median training time to target (s) | mean wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    medians = {}
    for recipe in args.recipes:
        mine = [r for r in results if r["recipe"] == recipe]
        reached = [r["to_target"] for r in mine if r["to_target"] is not None]
        medians[recipe] = statistics.median(reached) if reached else None
        median = f"{medians[recipe]:.1f}" if reached else "—"
        print(f"| {recipe} | {mine[0]['batch']} | {len(mine)} | "
              f"{100 * statistics.mean(r['final'] for r in mine):.2f}% | "
              f"{len(reached)} of {len(mine)} | {median} | "
              f"{statistics.mean(r['wall'] for r in mine):.1f} |")
    first, *others = args.recipes
    for other in others:
        if medians[first] and medians[other]:
            print(f"\n{other}: {medians[first] / medians[other]:.2f}x faster to "
                  f"{100 * args.target:.0f}% than {first}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Named recipes: sets of training settings with the result they were measured to give.

A recipe is data (``recipes.json`` beside this module), not code: for each name, a one-line
summary, the :class:`~cnnkit.engines.config.TrainConfig` fields it sets, and what it was
measured to reach (the command, seeds, epochs, wall time and accuracy are in the benchmarks'
README), or null where it was not measured. ``cnnkit train --recipe NAME`` starts from the
recipe's settings; every option given on the command line overrides the recipe's value, and
the run's configuration records the recipe's name and each value that was overridden.
Torch-free.

>>> recipe("mnist-best").settings["augment"]
'elastic'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cnnkit.errors import BadFile, InvalidArgument

__all__ = ["Recipe", "apply_recipe", "recipe", "recipe_lines", "recipes"]


@dataclass(frozen=True)
class Recipe:
    """One named recipe: its summary, the settings it gives, and what it was measured to reach
    (None where it was not)."""

    name: str
    summary: str
    settings: dict
    measured: str | None


@cache
def recipes() -> dict[str, Recipe]:
    """Every recipe, by name, as ``recipes.json`` lists them; each checked against the fields
    of :class:`~cnnkit.engines.config.TrainConfig`."""
    from cnnkit.engines.config import TrainConfig

    text = resources.files(__package__).joinpath("recipes.json").read_text(encoding="utf-8")
    fields = {item.name for item in dataclasses.fields(TrainConfig)}
    found = {}
    for name, entry in json.loads(text).items():
        unknown = sorted(set(entry["settings"]) - fields)
        if unknown or set(entry) != {"summary", "settings", "measured"}:
            raise BadFile(f"recipe {name!r} in recipes.json has unknown keys {unknown}")
        found[name] = Recipe(name, entry["summary"], dict(entry["settings"]), entry["measured"])
    return found


def recipe(name: str) -> Recipe:
    """The recipe called ``name``; any other name is refused with the list of names."""
    known = recipes()
    if not isinstance(name, str) or name not in known:
        raise InvalidArgument(
            f"recipe must be one of {', '.join(known)}, got {name!r} (cnnkit train "
            "--list-recipes shows them)")
    return known[name]


def apply_recipe(name: str | None, given: dict) -> dict:
    """The configuration's fields: recipe ``name``'s settings overridden by ``given``, with
    ``recipe`` set to the name and ``recipe_overrides`` to ``{field: {"recipe": value,
    "used": value}}`` for every setting of the recipe that ``given`` changed."""
    if name is None:
        return dict(given)
    settings = recipe(name).settings
    overrides = {key: {"recipe": value, "used": given[key]} for key, value in settings.items()
                 if key in given and given[key] != value}
    return {**settings, **given, "recipe": name, "recipe_overrides": overrides or None}


def _value(value: object) -> str:
    return "none" if value is None else str(value)


def recipe_lines() -> list[str]:
    """What ``cnnkit train --list-recipes`` prints: each recipe's name, summary, settings as
    command-line options and measured result."""
    lines = []
    for item in recipes().values():
        options = " ".join(f"--{key.replace('_', '-')} {_value(value)}"
                           for key, value in item.settings.items())
        lines += [f"{item.name}: {item.summary}",
                  f"  settings: {options or 'the defaults'}",
                  f"  measured: {item.measured or 'not measured'}", ""]
    return lines[:-1]

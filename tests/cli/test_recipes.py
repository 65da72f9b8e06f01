"""Named recipes: every recipe is a valid configuration, --list-recipes shows them, the options
given override a recipe's values and the run's configuration records both, and refusals."""

from __future__ import annotations

import json

import pytest

from cnnkit.cli import main
from cnnkit.engines.config import TrainConfig
from cnnkit.engines.recipes import apply_recipe, recipe, recipes
from cnnkit.errors import InvalidArgument
from tests.specs import TINY, write_spec


def test_every_recipe_is_a_valid_configuration_of_the_tutorials_layers():
    """Each recipe's settings build a TrainConfig; the four the project promises exist; no
    recipe changes the architecture (records are with the tutorial's network)."""
    assert {"tutorial", "mnist-best", "fashion-best", "speedrun"} <= set(recipes())
    for item in recipes().values():
        config = TrainConfig(**item.settings, recipe=item.name)
        assert config.arch == "tutorial" and item.summary
    assert recipe("tutorial").settings == {}


def test_list_recipes_prints_each_with_its_settings_and_result(capsys):
    """--list-recipes needs no run folder: every name, its settings as options and what it
    was measured to reach (or that it was not)."""
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--list-recipes"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    for item in recipes().values():
        assert f"{item.name}: {item.summary}" in out
        assert (item.measured or "not measured") in out
    assert "--augment elastic" in out and "settings: the defaults" in out


def test_given_options_override_the_recipe_and_are_recorded():
    """apply_recipe: the recipe's values, the given ones on top, and each change recorded."""
    fields = apply_recipe("mnist-best", {"epochs": 3, "augment": "elastic", "seed": 4})
    assert fields["epochs"] == 3 and fields["batch_size"] == 128 and fields["seed"] == 4
    assert fields["recipe"] == "mnist-best"
    assert fields["recipe_overrides"] == {"epochs": {"recipe": 30, "used": 3}}
    assert apply_recipe("mnist-best", {})["recipe_overrides"] is None
    with pytest.raises(InvalidArgument, match="recipe must be one of tutorial"):
        apply_recipe("mnist-worst", {})


def test_a_run_from_a_recipe_records_the_recipe_and_its_overrides(tmp_path, monkeypatch,
                                                                  capsys):
    """cnnkit train --recipe speedrun with a smaller data set, 2 epochs: the run's config.json
    holds the recipe's other values, its name and what was overridden; resuming with another
    recipe is refused in one line."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    arch = write_spec(TINY, tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--recipe", "speedrun", "--dataset", "synthetic-digits", "--arch",
                 str(arch), "--train-limit", "300", "--val-size", "50", "--epochs", "2",
                 "--quiet", "--no-report", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    settings = recipe("speedrun").settings
    assert config["recipe"] == "speedrun"
    assert config["batch_size"] == settings["batch_size"] and config["lr"] == settings["lr"]
    assert config["recipe_overrides"] == {
        "dataset": {"recipe": settings["dataset"], "used": "synthetic-digits"},
        "epochs": {"recipe": settings["epochs"], "used": 2},
        "val_size": {"recipe": settings["val_size"], "used": 50},
    }
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--recipe", "mnist-best", "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot change the recipe of a resumed run" in err[0]


def test_an_unknown_recipe_is_one_line_and_exit_2(tmp_path, capsys):
    """The message lists the recipes; nothing is written."""
    assert main(["train", "--recipe", "fastest", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "speedrun" in err[0] and "--list-recipes" in err[0]
    assert not (tmp_path / "run").exists()


def test_train_help_lists_the_recipe_and_augmentation_options(capsys):
    """train --help formats every option's help (a stray percent sign breaks argparse)."""
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    for flag in ("--recipe", "--list-recipes", "--erase", "--rotate", "--elastic-alpha"):
        assert flag in out
    assert "(2% to 40% of it)" in " ".join(out.split())

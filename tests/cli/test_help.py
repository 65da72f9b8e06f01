"""Every command's --help: abbreviations off, every option's default stated, usage truthful."""

from __future__ import annotations

import argparse
import re

import pytest

from cnnkit.cli import build_parser, main
from cnnkit.commands.train import _ListRecipes

FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)
# Actions that print and stop (--help, --version, train --list-recipes) take no value.
SKIPPED = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction,
           _ListRecipes)


def _parsers(parser=None, prefix=()):
    """(command words, parser) for the top parser and every subparser, depth first."""
    parser = parser or build_parser()
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*prefix, name))


PARSERS = list(_parsers())


def _in_required_group(parser, action):
    return any(group.required and action in group._group_actions
               for group in parser._mutually_exclusive_groups)


def _options():
    """(command, option, action) for every option that takes a value and may be left out."""
    for words, parser in PARSERS:
        for action in parser._actions:
            if (isinstance(action, SKIPPED + FLAGS) or not action.option_strings
                    or action.required or _in_required_group(parser, action)):
                continue
            yield " ".join(words), action.option_strings[-1], action


def _names(text, value):
    """Whether the help text names the default value (a float in any notation)."""
    if isinstance(value, float):
        numbers = re.findall(r"-?\d+(?:\.\d*)?(?:e-?\d+)?", text)
        return any(float(number) == value for number in numbers)
    shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return shown in text


def test_every_parser_refuses_abbreviations():
    """Regression: '--padding valid' on filter was read as '--padding-mode valid'. No parser
    expands an abbreviated option."""
    assert len(PARSERS) > 15
    assert all(parser.allow_abbrev is False for _, parser in PARSERS)


@pytest.mark.parametrize(("command", "option", "action"), list(_options()),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_every_option_states_its_default(command, option, action):
    """Each option that may be left out says in its help what happens then ('default: ...'),
    and an option with a default value names that value."""
    text = action.help or ""
    assert "default" in text, f"cnnkit {command} {option}: {text!r}"
    if action.default is not None:
        assert _names(text, action.default), f"cnnkit {command} {option}: {text!r}"


@pytest.mark.parametrize("words", [words for words, _ in PARSERS],
                         ids=lambda words: " ".join(words) or "cnnkit")
def test_every_help_prints(capsys, words):
    """--help of every command and subcommand exits 0 and prints its usage."""
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: cnnkit")


def test_filter_padding_is_not_taken_for_padding_mode(capsys, tmp_path):
    """Regression: 'filter --padding valid' failed as '--padding-mode: invalid choice'; now it
    gives the valid result, and an abbreviated '--padd' is refused."""
    out = tmp_path / "out.npy"
    argv = ["filter", "--sample", "grid", "--kernel", "box:size=5", "-o", str(out)]
    assert main([*argv, "--padding", "valid"]) == 0
    assert "result 124x124" in capsys.readouterr().out
    assert main([*argv, "--padd", "valid", "--overwrite"]) == 2
    assert "unrecognized arguments: --padd" in capsys.readouterr().err


def test_train_usage_says_out_or_resume_is_required(capsys):
    """Regression: --out showed as optional. The usage line shows it as one of two required
    choices, and leaving both out is refused naming them."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    usage = " ".join(capsys.readouterr().out.split("options:")[0].split())
    assert "(--out RUN_DIR | --resume RUN_DIR)" in usage
    assert main(["train"]) == 2
    assert "one of the arguments --out --resume is required" in capsys.readouterr().err

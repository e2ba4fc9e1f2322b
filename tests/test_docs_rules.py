"""The table of what each `rnnkit train` option and config.json key accepts, in
docs/guide/cli.md, is the validation table itself (``rnnkit.training.config.RULES``) put in
words: this test renders the table from the rules and fails where the page differs.

``python tests/test_docs_rules.py`` writes the rendered table into the page."""

import dataclasses
import sys
from pathlib import Path

from rnnkit.catalog import CELL_NAMES
from rnnkit.tasks import TASKS
from rnnkit.training.config import _TYPE_WORDS, RULES, Rule, TrainConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "cli.md"
START = "<!-- the rules' table: written by `python tests/test_docs_rules.py`; do not edit -->"
END = "<!-- end of the rules' table -->"
OFF = "0 (`null` in config.json)"
"""How "off" (None) is said: 0 on the command line, null in a file."""


def option(name: str, rule: Rule) -> str:
    flag = name.replace("_", "-")
    return f"`--[no-]{flag}`" if rule.kind is bool else f"`--{flag}`"


def accepted(name: str, rule: Rule) -> str:
    """What ``rule`` accepts, in the words of its error messages."""
    if name == "task":  # its names are checked against the registered tasks
        return "a task name: " + ", ".join(f"`{task}`" for task in TASKS)
    if rule.kind is bool:
        return "true or false (`--NAME` or `--no-NAME`)".replace("NAME", name.replace("_", "-"))
    if rule.choices:
        what = "a cell name of `rnnkit list`" if name == "cell" else "one of"
        words = f"{what}: " + ", ".join(f"`{choice}`" for choice in rule.choices)
    elif rule.kind is str:
        words = rule.expected.format(off=OFF) or _TYPE_WORDS[str]
    else:
        words = f"{_TYPE_WORDS[rule.kind]} {rule.expected.format(off=OFF)}"
    if rule.optional and "{off}" not in rule.expected:
        words += ", or `null` in config.json"
    return words


def rendered() -> str:
    rows = [START, "", "| option | config.json key | accepted |", "|---|---|---|"]
    rows += [f"| {option(name, rule)} | `{name}` | {accepted(name, rule)} |"
             for name, rule in RULES.items()]
    return "\n".join([*rows, "", END])


def page_block(text: str) -> str:
    assert START in text and END in text, f"{PAGE} lacks the rules' table markers"
    return text[text.index(START):text.index(END) + len(END)]


def test_the_cli_page_shows_the_validation_rules_as_they_are():
    text = PAGE.read_text()
    assert page_block(text) == rendered(), (
        "docs/guide/cli.md's table of accepted values differs from the rules in "
        "rnnkit/training/config.py: run `python tests/test_docs_rules.py` to rewrite it")


def test_the_table_names_every_setting_and_real_options(cli):
    assert set(RULES) == {field.name for field in dataclasses.fields(TrainConfig)}
    assert set(CELL_NAMES) <= set(RULES["cell"].choices)
    _, out, _ = cli("train", "--help")
    for name, rule in RULES.items():
        flag = name.replace("_", "-")
        assert f"--{flag}" in out, flag
        if rule.kind is bool:
            assert f"--no-{flag}" in out, flag


if __name__ == "__main__":
    text = PAGE.read_text()
    PAGE.write_text(text.replace(page_block(text), rendered()))
    sys.stdout.write(f"wrote the rules' table into {PAGE}\n")

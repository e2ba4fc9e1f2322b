"""The documentation stays in step with the code: README's commands, the API pages, the links.

These checks read files only; the site itself is built by ``mkdocs build --strict`` in the
README's test command, which fails on a broken link or an unresolved reference.
"""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import rnnkit

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
API = DOCS / "api"
MKDOCS = ROOT / "mkdocs.yml"

# Every package whose public names the API reference must document, by a ``::: name`` directive.
DOCUMENTED = ("rnnkit.cells", "rnnkit.layers", "rnnkit.engine.select", "rnnkit.models",
              "rnnkit.training", "rnnkit.data", "rnnkit.diagnostics", "rnnkit.catalog")
TASK_MODULES = ("rnnkit.tasks", "rnnkit.tasks.language_model", "rnnkit.tasks.classify",
                "rnnkit.tasks.forecast", "rnnkit.tasks.g2p", "rnnkit.tasks.handwriting",
                "rnnkit.tasks.synthetic")


def setup_commands() -> list[str]:
    """The shell commands of README's set-up section: [install and run, test]."""
    text = README.read_text()
    section = text.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def directives(page: Path) -> list[str]:
    """The objects a page documents with mkdocstrings' ``::: name``."""
    return re.findall(r"^::: (\S+)", page.read_text(), flags=re.MULTILINE)


def resolve(path: str) -> object:
    """The module or object a dotted path names."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(path)


def test_readme_has_the_two_setup_commands():
    install, test = setup_commands()
    assert install.endswith("pip install -e . && rnnkit build && rnnkit train")
    assert "mkdocs build --strict" in test and "python -m pytest" in test
    # The kernels are compiled before the tests: a build that fails stops CI there.
    assert test.index("rnnkit build") < test.index("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command():
    ci_commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line and not line.startswith("#")]
    assert setup_commands()[1] == ci_commands[-1]


def test_readme_is_a_short_manual():
    assert len(README.read_text().splitlines()) <= 260


def test_readme_links_point_to_files():
    text = README.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which is missing"


def test_every_top_level_name_is_in_the_api_reference():
    index = (API / "index.md").read_text()
    links = dict(re.findall(r"\[`rnnkit\.(\w+)`\]\[([\w.]+)\]", index))
    for name in rnnkit.__all__:
        assert name in links, f"rnnkit.{name} is missing from docs/api/index.md"
        assert resolve(links[name]) is getattr(rnnkit, name), (
            f"docs/api/index.md links rnnkit.{name} to {links[name]}, another object")


@pytest.mark.parametrize("page", sorted(API.glob("*.md")), ids=lambda page: page.name)
def test_api_directives_name_importable_objects(page):
    if page.name == "tasks.md" and importlib.util.find_spec("rnnkit.tasks") is None:
        pytest.skip("rnnkit.tasks does not exist yet")
    for path in directives(page):
        resolve(path)


def test_every_public_package_has_an_api_page():
    documented = {path for page in API.glob("*.md") for path in directives(page)}
    for package in DOCUMENTED:
        assert package in documented, f"no ::: {package} directive under docs/api/"


def test_tasks_reference_is_built_once_the_package_exists():
    if importlib.util.find_spec("rnnkit.tasks") is None:
        pytest.skip("rnnkit.tasks does not exist yet")
    assert set(TASK_MODULES) <= set(directives(API / "tasks.md"))
    config = MKDOCS.read_text()
    assert re.search(r"^\s+- tasks: api/tasks.md", config, flags=re.MULTILINE), (
        "rnnkit.tasks exists: enable docs/api/tasks.md in mkdocs.yml (remove it from "
        "exclude_docs and uncomment its nav entry)")
    assert not re.search(r"^\s+api/tasks.md$", config, flags=re.MULTILINE)


@pytest.mark.parametrize("page", [README, DOCS / "getting-started.md"],
                         ids=lambda page: page.name)
def test_quick_start_code_runs(page):
    blocks = re.findall(r"```python\n(.+?)```", page.read_text(), flags=re.DOTALL)
    assert blocks
    exec(compile("\n".join(blocks), str(page), "exec"), {})  # noqa: S102 -- our own docs

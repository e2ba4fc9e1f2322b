"""The command line: train, sample, evaluate, list, help, and `python -m rnnkit`."""

import json
import math
import os
import random
import subprocess
import sys

import pytest

from rnnkit import CELL_NAMES, describe_cells
from rnnkit.cli import main

WORDS = "shall i compare thee to a summers day thou art more lovely and temperate".split()
TINY = ["--steps", "4", "--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4",
        "--bptt", "16", "--eval-every", "4", "--warmup", "2", "--time-limit", "0",
        "--device", "cpu", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_corpus(path, characters=1500, seed=0):
    rng = random.Random(seed)
    text = ""
    while len(text) < characters:
        text += " ".join(rng.choice(WORDS) for _ in range(6)) + ".\n"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    corpus = write_corpus(folder / "corpus.txt")
    assert main(["train", "--data", str(corpus), *TINY, "--steps", "8",
                 "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_train_prints_metrics_the_run_directory_and_a_sample(tmp_path, cli):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code, out, err = cli("train", "--data", str(corpus), *TINY, "--steps", "4",
                         "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert "finished 4 steps" in out and "validation: cross_entropy" in out
    assert f"run directory: {tmp_path / 'run'}" in out and "--- sample ---" in out
    assert (tmp_path / "run" / "report.md").is_file()


def test_train_without_out_writes_a_timestamped_run_under_runs(tmp_path, cli, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.txt")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", "--data", str(corpus), *TINY, "--steps", "2",
                       "--cell", "gru")
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-lm-gru") and (run / "config.json").is_file()


def test_resume_continues_a_run_stopped_by_its_time_limit(tmp_path, cli):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = str(tmp_path / "run")
    options = ["--data", str(corpus), *TINY, "--steps", "6"]
    code, out, _ = cli("train", *options, "--time-limit", "0.000001", "--out", run)
    assert code == 0 and f"rnnkit train --resume {run}" in out
    code, out, err = cli("train", "--resume", run, "--time-limit", "0")
    assert code == 0, err
    assert "finished 6 steps" in out
    steps = [line.split(",")[0] for line in (tmp_path / "run" / "metrics.csv").read_text()
             .splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_resume_with_more_steps_trains_further(trained_run, tmp_path, cli):
    run = tmp_path / "copy"
    run.mkdir()
    for item in trained_run.rglob("*"):
        if item.is_file():
            (run / item.relative_to(trained_run)).parent.mkdir(parents=True, exist_ok=True)
            (run / item.relative_to(trained_run)).write_bytes(item.read_bytes())
    code, out, err = cli("train", "--resume", str(run), "--steps", "10")
    assert code == 0, err
    assert "finished 10 steps" in out
    assert json.loads((run / "config.json").read_text())["steps"] == 10


def test_sample_continues_the_prompt_repeatably(trained_run, cli):
    arguments = ["sample", str(trained_run), "--prompt", "thou ", "--length", "40",
                 "--seed", "3"]
    code, first, err = cli(*arguments)
    assert code == 0, err
    assert first.startswith("thou ") and len(first.rstrip("\n")) == len("thou ") + 40
    assert cli(*arguments)[1] == first
    code, greedy, _ = cli("sample", str(trained_run), "--prompt", "a", "--length", "5",
                          "--temperature", "0", "--top-k", "3")
    assert code == 0 and len(greedy.rstrip("\n")) == 6


def test_evaluate_reports_test_cross_entropy_in_nats_and_bits(trained_run, cli):
    code, out, err = cli("evaluate", str(trained_run))
    assert code == 0, err
    values = dict(line.split() for line in out.splitlines()[1:])
    assert "test split" in out.splitlines()[0]
    report = json.loads((trained_run / "report.json").read_text())
    assert float(values["cross_entropy"]) == pytest.approx(report["test"]["cross_entropy"],
                                                          abs=1e-4)
    assert float(values["bits_per_char"]) == pytest.approx(
        float(values["cross_entropy"]) / math.log(2), abs=1e-3)


def test_evaluate_scores_all_of_another_text(trained_run, tmp_path, cli):
    other = write_corpus(tmp_path / "other.txt", characters=300, seed=9)
    code, out, err = cli("evaluate", str(trained_run), "--data", str(other))
    assert code == 0, err
    assert f"all split of {other}" in out and "bits_per_char" in out
    values = dict(line.split() for line in out.splitlines()[1:])
    assert values["unknown_chars"] == "0"


def test_text_with_characters_never_seen_is_scored_at_their_spelling_cost(trained_run,
                                                                          tmp_path, cli):
    # "Z" and "!" never occur in the training corpus; each costs the unknown symbol's
    # probability and then ln 256 for its one UTF-8 byte.
    seen, unseen = tmp_path / "seen.txt", tmp_path / "unseen.txt"
    seen.write_text("shall thou art. " * 40)
    unseen.write_text("shall thou Z!t. " * 40)
    scores = {}
    for path in (seen, unseen):
        code, out, err = cli("evaluate", str(trained_run), "--data", str(path))
        assert code == 0, err
        scores[path] = dict(line.split() for line in out.splitlines()[1:])
    assert scores[unseen]["unknown_chars"] == "80" and scores[seen]["unknown_chars"] == "0"
    unseen_nats = float(scores[unseen]["cross_entropy"])
    assert unseen_nats > 2 * math.log(256) / 16  # the spelling alone
    assert unseen_nats > float(scores[seen]["cross_entropy"])


def test_sample_reads_a_prompt_with_unseen_characters_as_the_unknown_symbol(trained_run,
                                                                            cli):
    code, out, err = cli("sample", str(trained_run), "--prompt", "Zebra",
                         "--length", "10", "--seed", "1")
    assert code == 0, err
    assert out.startswith("Zebra") and len(out) == len("Zebra") + 10 + 1  # and print's "\n"
    assert "'Z'" in err and "unknown symbol" in err


def test_list_shows_every_cell_with_its_description_and_the_tasks(cli):
    code, out, _ = cli("list")
    assert code == 0
    for name, description in describe_cells().items():
        assert f"{name} " in out and description in out
    assert "tasks (--task):" in out and "\n  lm " in out
    assert len(CELL_NAMES) == len(describe_cells())


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "list"])
def test_every_command_has_help_with_an_example(command, cli):
    code, out, _ = cli(command, "--help")
    assert code == 0 and "example" in out and f"rnnkit {command}" in out


def test_python_m_rnnkit_is_the_same_command_line(cli):
    done = subprocess.run([sys.executable, "-m", "rnnkit", "list"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert done.stdout == cli("list")[1]


def _transparent_huge_pages() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as file:
            return file.read()
    except OSError:
        return ""


@pytest.mark.skipif("[madvise]" not in _transparent_huge_pages(),
                    reason="needs Linux transparent huge pages in madvise mode")
@pytest.mark.parametrize(("setting", "huge"), [(None, False), ("1", True)])
def test_commands_leave_the_allocator_settings_to_the_user(setting, huge):
    # The CLI sets nothing of torch's allocator: fresh 40 MB tensors fault in 10,240 pages of
    # 4 KB each, or 20 huge pages only where the user asked torch for them
    # (THP_MEM_ALLOC_ENABLE=1).
    code = ("import os, resource, rnnkit.cli, torch\n"
            "rnnkit.cli.main(['list'])\n"
            "print(os.environ.get('THP_MEM_ALLOC_ENABLE'))\n"
            "def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "before = faults()\n"
            "for _ in range(5): torch.ones(10 * 2**20)\n"
            "print((faults() - before) / 5)")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if setting is not None:
        env["THP_MEM_ALLOC_ENABLE"] = setting
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2] == str(setting)
    faults = float(done.stdout.splitlines()[-1])
    assert (faults < 10240 / 4) if huge else (faults > 10240 / 2), faults

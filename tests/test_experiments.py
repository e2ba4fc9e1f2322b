"""Every experiment in quick mode: it writes its report, CSVs and plots, and shows what it claims.

Each experiment runs once per module (fixtures below) with its fixed default seeds; the assertions
are the qualitative outcomes, with margins far wider than the run-to-run differences seen across
seeds and thread counts.
"""

import argparse
import csv
import dataclasses
import math

import pytest

from rnnkit.data import adding_baseline
from rnnkit.experiments import (
    EXPERIMENTS,
    add_experiment_arguments,
    clipping,
    dependency,
    experiment_command,
    long_range,
    variants,
)


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def assert_outputs(directory, report, names):
    assert report == directory / "report.md"
    assert report.read_text().startswith("# ")
    for name in names:
        path = directory / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.fixture(scope="module")
def long_range_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("long_range")
    return directory, long_range.run(directory, quick=True)


@pytest.fixture(scope="module")
def variants_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("variants")
    return directory, variants.run(directory, quick=True)


@pytest.fixture(scope="module")
def clipping_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clipping")
    return directory, clipping.run(directory, quick=True)


@pytest.fixture(scope="module")
def dependency_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dependency")
    return directory, dependency.run(directory, quick=True)


def test_registry_names_every_experiment_with_a_description():
    assert set(EXPERIMENTS) == {"long_range", "variants", "clipping", "dependency"}
    for run, description in EXPERIMENTS.values():
        assert callable(run) and description


def test_long_range_lstm_and_gru_solve_the_adding_problem_the_tanh_rnn_does_not(long_range_run):
    directory, report = long_range_run
    assert_outputs(directory, report, ["adding_results.csv", "copy_results.csv", "curves.csv",
                                       "gradient_flow.csv", "adding_curves.png",
                                       "copy_curves.png", "gradient_flow.png"])
    mse = {row["cell"]: float(row["test_mse"])
           for row in read_csv(directory / "adding_results.csv")}
    copy_rows = read_csv(directory / "copy_results.csv")
    assert {row["cell"] for row in copy_rows} == set(long_range.QUICK_CELLS)
    for row in copy_rows:
        assert math.isfinite(float(row["test_ce"])) and 0 <= float(row["recall_accuracy"]) <= 1
    assert set(mse) == set(long_range.QUICK_CELLS)
    assert mse["rnn"] > 0.1  # the trivial answer scores 1/6
    for cell in ("lstm", "gru"):
        assert mse[cell] < long_range.ADDING_SOLVED_MSE
        assert mse[cell] < 0.2 * mse["rnn"]
    for cell in long_range.QUICK_CELLS:
        assert f"| {cell} |" in report.read_text()


def test_long_range_results_do_not_depend_on_the_number_of_worker_processes(tmp_path):
    # Each training run has one thread wherever it runs: in this process or in workers.
    tiny = dataclasses.replace(long_range.QUICK, adding_steps={12: 30}, copy_steps={4: 20},
                               eval_every=10, flow_length=12)
    results = {}
    for workers in (1, 2):
        directory = tmp_path / f"workers{workers}"
        report = long_range.run(directory, plan=dataclasses.replace(tiny, workers=workers))
        assert f"with {workers} worker process(es)" in report.read_text()
        results[workers] = [read_csv(directory / name)
                            for name in ("curves.csv", "gradient_flow.csv")]
    assert results[1] == results[2] and results[1][0] and results[1][1]


def test_long_range_gradient_reaches_the_first_step_only_through_gates(long_range_run):
    directory, _ = long_range_run
    flow = {}
    for row in read_csv(directory / "gradient_flow.csv"):
        flow.setdefault((row["cell"], row["model"]), []).append(float(row["grad_norm"]))
    # ||dL/dh_0|| / ||dL/dh_{T-1}||: how much of the gradient survives the whole sequence.
    survival = {key: values[0] / values[-1] for key, values in flow.items()}
    assert survival["lstm", "trained"] > 1e3 * survival["rnn", "trained"]
    assert survival["gru", "trained"] > 1e3 * survival["rnn", "trained"]
    assert survival["rnn", "initial"] < 1e-6


def test_variants_lists_all_nine_and_no_forget_gate_fails_the_continual_grammar(variants_run):
    directory, report = variants_run
    assert_outputs(directory, report, ["results.csv", "curves.csv", "variants.png"])
    rows = {row["variant"]: row for row in read_csv(directory / "results.csv")}
    assert list(rows) == list(variants.VARIANTS)
    for row in rows.values():
        for key in ("excess_cross_entropy", "determined_accuracy", "long_range_accuracy"):
            assert math.isfinite(float(row[key]))
        assert f"| {row['variant']} |" in report.read_text()
    excess = {name: float(row["excess_cross_entropy"]) for name, row in rows.items()}
    assert float(rows["V"]["long_range_accuracy"]) > 0.9
    assert excess["NFG"] > 5 * excess["V"]


def test_reber_stream_marks_what_is_predictable():
    stream = variants.reber_stream(2000, seed=3)
    symbols = "".join(variants.REBER_SYMBOLS[i] for i in stream.targets.tolist())
    # Every determined target is B, E or the repeated branch symbol; the long-range ones repeat
    # the second symbol of their string.
    for index in stream.determined.nonzero().flatten().tolist():
        assert symbols[index] in "BETP"
    starts = [i for i in range(len(symbols) - 1) if symbols[i] == "B" and symbols[i + 1] in "TP"
              and i + 2 < len(symbols) and symbols[i + 2] == "B"]
    checked = 0
    for index in stream.long_range.nonzero().flatten().tolist():
        earlier = [s for s in starts if s < index]
        if earlier:  # the first string's opening B is an input, never a target
            assert symbols[index] == symbols[max(earlier) + 1]
            checked += 1
    assert checked > 100
    assert 0.3 < stream.optimal_cross_entropy < 0.5


def test_clipping_unclipped_training_diverges_clipped_training_learns(clipping_run):
    directory, report = clipping_run
    assert_outputs(directory, report, ["results.csv", "steps.csv", "clipping.png"])
    rows = read_csv(directory / "results.csv")
    clipped = [r for r in rows if r["mode"] == "clipped"]
    unclipped = [r for r in rows if r["mode"] == "unclipped"]
    assert len(clipped) == len(unclipped) == clipping.QUICK.seeds
    for row in unclipped:
        assert row["diverged_step"] != ""
        assert float(row["max_finite_grad_norm"]) > 1e6
    for row in clipped:
        assert row["diverged_step"] == ""
        assert float(row["max_finite_grad_norm"]) < 1e3
        assert float(row["test_mse"]) < adding_baseline().mse


def test_dependency_lstm_and_gru_recall_across_long_gaps_the_tanh_rnn_does_not(dependency_run):
    directory, report = dependency_run
    assert_outputs(directory, report, ["results.csv", "dependency.png"])
    accuracy = {(row["cell"], int(row["max_gap"])): float(row["test_accuracy"])
                for row in read_csv(directory / "results.csv")}
    longest = max(dependency.QUICK.gaps)
    for cell in ("lstm", "gru"):
        assert accuracy[cell, longest] > 0.9
        assert accuracy[cell, longest] >= accuracy["rnn", longest] + 0.5
    assert accuracy["lstm", min(dependency.QUICK.gaps)] > 0.9


def test_experiment_command_runs_a_named_experiment_and_clipping_is_deterministic(
        clipping_run, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_experiment_arguments(parser)
    args = parser.parse_args(["clipping", "--quick", "--seeds", "1", "--out", str(tmp_path)])
    assert experiment_command(args) == 0
    assert str(tmp_path / "report.md") in capsys.readouterr().out
    assert len(read_csv(tmp_path / "results.csv")) == 2  # one seed, clipped and unclipped
    # Deterministic: this run of seed 0 wrote, byte for byte, the rows of seed 0 (the header,
    # then the first rows) that the module's two-seed run wrote.
    directory, _ = clipping_run
    for name in ("results.csv", "steps.csv"):
        lines = (tmp_path / name).read_bytes().splitlines(keepends=True)
        assert {row["seed"] for row in read_csv(tmp_path / name)} == {"0"}, name
        assert (directory / name).read_bytes().startswith(b"".join(lines)), name
    assert parser.parse_args(["long-range", "--quick"]).name == "long_range"
    with pytest.raises(SystemExit):
        parser.parse_args(["no-such-experiment"])

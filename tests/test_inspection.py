"""`rnnkit inspect`: gradient flow through time and gate traces of trained runs, and its errors.

Two tiny character language models (a tanh RNN and an LSTM, same data, same seed, 100 steps) are
trained once per module through the command line; every test inspects them. They train without
the language model's output penalties, so that they differ in the cell only: the activation
penalty also shrinks a small LSTM's gradient through time, by many orders of magnitude.
"""

import csv
import json

import pytest
import torch

import rnnkit
import rnnkit.models.ctc
from rnnkit.cli import main
from rnnkit.data import load_text
from rnnkit.diagnostics import gradient_flow
from rnnkit.inspection import inspect_gates, inspect_gradients, load_run
from rnnkit.training.errors import RunError

BPTT = 40
TEXT = "To be, or not to be"


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect_runs")
    text = folder / "text.txt"
    text.write_text(load_text("shakespeare")[:20_000])
    made = {}
    for cell in ("rnn", "lstm"):
        made[cell] = folder / cell
        code = main(["train", "--cell", cell, "--data", str(text), "--steps", "100",
                     "--hidden-size", "32", "--embedding-size", "16", "--bptt", str(BPTT),
                     "--batch-size", "8", "--eval-every", "100", "--threads", "1",
                     "--activation-penalty", "0", "--temporal-penalty", "0",
                     "--out", str(made[cell])])
        assert code == 0
    return made


@pytest.fixture(scope="module")
def gradients(runs, tmp_path_factory):
    out = {}
    for cell, run in runs.items():
        folder = tmp_path_factory.mktemp(f"gradients_{cell}")
        assert main(["inspect", str(run), "--gradients", "--out", str(folder)]) == 0
        out[cell] = folder
    return out


def profile(folder, model, column):
    return [float(row[column]) for row in read_csv(folder / "gradients.csv")
            if row["model"] == model]


def test_gradients_writes_a_csv_row_per_step_and_model_and_a_png(gradients):
    for folder in gradients.values():
        rows = read_csv(folder / "gradients.csv")
        assert [row["model"] for row in rows] == ["initial"] * BPTT + ["trained"] * BPTT
        assert [int(row["step"]) for row in rows] == list(range(BPTT)) * 2
        for row in rows:
            for column in ("loss_gradient", "final_loss_gradient", "state_jacobian"):
                assert float(row[column]) >= 0.0
        assert is_png(folder / "gradients.png")


def test_tanh_rnn_gradient_vanishes_where_the_lstm_gradient_survives(gradients):
    for model in ("initial", "trained"):
        for column in ("final_loss_gradient", "state_jacobian"):
            rnn = profile(gradients["rnn"], model, column)
            lstm = profile(gradients["lstm"], model, column)
            # Comparable at the last step, orders of magnitude apart at the first.
            assert rnn[-1] > 0.1 * lstm[-1], (model, column)
            assert rnn[0] < 1e-2 * lstm[0], (model, column)
    # After training, the LSTM keeps far more of the gradient across the 40 steps.
    rnn = profile(gradients["rnn"], "trained", "final_loss_gradient")
    lstm = profile(gradients["lstm"], "trained", "final_loss_gradient")
    assert rnn[0] / rnn[-1] < 1e-4 * (lstm[0] / lstm[-1])
    # The full loss has a term at every step, so its gradient never vanishes at h_0.
    full = profile(gradients["rnn"], "trained", "loss_gradient")
    assert full[0] > 1e3 * rnn[0]


def test_initial_model_is_rebuilt_from_the_run_seed_whatever_the_random_state(runs):
    torch.manual_seed(123)
    loaded = load_run(runs["lstm"])
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # load_run leaves the caller's random state alone
    again = load_run(runs["lstm"])
    initial = again.initial.state_dict()
    for name, value in loaded.initial.state_dict().items():
        assert torch.equal(value, initial[name]), name
    changed = [name for name, value in loaded.trained.state_dict().items()
               if not torch.equal(value, loaded.initial.state_dict()[name])]
    assert changed and loaded.step == 100


def test_library_function_returns_the_flows_it_writes(runs, tmp_path):
    flows = inspect_gradients(runs["rnn"], tmp_path, jacobian=False)
    assert set(flows) == {"initial", "trained"}
    assert flows["trained"].state_jacobian is None
    written = [float(row["loss_gradient"]) for row in read_csv(tmp_path / "gradients.csv")
               if row["model"] == "trained"]
    assert written == pytest.approx(flows["trained"].loss_gradient.tolist())


def test_gradient_flow_measures_a_final_step_loss_given_as_a_pair():
    layer = rnnkit.RNN(3, 8, batch_first=True)
    x = torch.randn(4, 12, 3)

    def losses():
        output = layer(x)[0]
        return output.pow(2).mean(), output[:, -1].pow(2).mean()

    flow = gradient_flow(layer, losses, jacobian=False)
    assert flow.final_loss_gradient is not None
    assert flow.final_loss_gradient[-1] > 0
    assert flow.loss_gradient[0] > flow.final_loss_gradient[0]


def test_gates_write_heatmaps_saturation_and_traces(runs, tmp_path, capsys):
    assert main(["inspect", str(runs["lstm"]), "--gates", "--text", TEXT,
                 "--out", str(tmp_path)]) == 0
    assert "gate f:" in capsys.readouterr().out
    for name in ("gates_layer0.png", "saturation.png"):
        assert is_png(tmp_path / name), name
    saturation = read_csv(tmp_path / "gate_saturation.csv")
    assert {row["gate"] for row in saturation} == {"i", "f", "o"}
    for row in saturation:
        low, high = float(row["left_saturated"]), float(row["right_saturated"])
        assert 0 <= low <= 1 and 0 <= high <= 1 and low + high <= 1
        assert 0 < float(row["mean"]) < 1
    traces = read_csv(tmp_path / "gate_traces.csv")
    assert len(traces) == 3 * len(TEXT)
    assert "".join(row["char"] for row in traces if row["gate"] == "f") == TEXT


def test_gate_statistics_match_the_layer_traces(runs, tmp_path):
    stats = inspect_gates(runs["lstm"], TEXT, tmp_path)
    loaded = load_run(runs["lstm"])
    from rnnkit.data import CharVocab

    vocab = CharVocab.from_dict(loaded.saved["vocab"])
    with torch.no_grad():
        embedded = loaded.trained.embedding(vocab.encode(TEXT).unsqueeze(0))
        _, _, traces = loaded.trained.layer(embedded, return_traces=True)
    forget = traces[0]["f"]
    assert stats[0]["f"]["left_saturated"] == pytest.approx(float((forget < 0.1).float().mean()))
    assert stats[0]["f"]["right_saturated"] == pytest.approx(float((forget > 0.9).float().mean()))


def test_ctc_draws_the_recognizers_probabilities_under_the_line(runs, tmp_path, monkeypatch):
    import shutil

    import rnnkit.inspection

    run = tmp_path / "hw"
    shutil.copytree(runs["lstm"], run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "task": "handwriting"}))
    calls = []

    class Recognizer(torch.nn.Module):  # reads every column as the digit 4
        config = rnnkit.models.ctc.LineRecognizerConfig()

        def forward(self, columns, lengths=None, targets=None):
            scores = torch.full((*columns.shape[:2], 11), -9.0)
            scores[..., 5] = 0.0
            return rnnkit.models.ModelOutput(scores.log_softmax(-1))

    def fake_plot_ctc(line, probs, path, *, title):
        calls.append((line.shape, probs.shape, title))
        path.write_bytes(b"png")
        return path

    monkeypatch.setattr(rnnkit.inspection, "load_recognizer", lambda path: (Recognizer(), {}))
    monkeypatch.setattr(rnnkit.inspection, "plot_ctc", fake_plot_ctc)
    assert main(["inspect", str(run), "--ctc", "17", "--out", str(tmp_path / "o")]) == 0
    ((line_shape, probs_shape, title),) = calls
    assert probs_shape == (line_shape[1], 11)
    assert title.startswith("test line 17: label ") and title.endswith(", read 4")


@pytest.mark.parametrize("arguments, message", [
    ([], "nothing to inspect"),
    (["--gates"], "--gates needs --text"),
    (["--text", "abc"], "--text is read by --gates"),
    (["--ctc", "3"], "--ctc needs a handwriting run"),
])
def test_inapplicable_options_are_one_line_errors(runs, tmp_path, capsys, arguments, message):
    assert main(["inspect", str(runs["lstm"]), "--out", str(tmp_path)] + arguments) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_gates_of_a_cell_without_gates_and_a_missing_run_are_errors(runs, tmp_path, capsys):
    assert main(["inspect", str(runs["rnn"]), "--gates", "--text", TEXT,
                 "--out", str(tmp_path)]) == 1
    assert "has no gates" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "nowhere"), "--gradients"]) == 1
    assert "no such run directory" in capsys.readouterr().err
    with pytest.raises(RunError, match="no such run directory"):
        load_run(tmp_path / "nowhere")


def test_several_runs_share_one_gradient_figure_one_line_per_run(runs, tmp_path, capsys):
    out = tmp_path / "compare"
    assert main(["inspect", str(runs["rnn"]), str(runs["lstm"]), "--gradients",
                 "--out", str(out)]) == 0
    rows = read_csv(out / "gradients.csv")
    assert {(row["run"], row["cell"]) for row in rows} == {("rnn", "rnn"), ("lstm", "lstm")}
    assert is_png(out / "gradients.png")

    def trained(run):
        return [float(row["final_loss_gradient"]) for row in rows
                if row["run"] == run and row["model"] == "trained"]

    rnn, lstm = trained("rnn"), trained("lstm")
    assert len(rnn) == len(lstm) == BPTT
    assert rnn[0] / rnn[-1] < 1e-4 * (lstm[0] / lstm[-1])  # the figure's point
    printed = capsys.readouterr().out
    assert "rnn trained:" in printed and "lstm trained:" in printed


def test_several_runs_are_only_for_gradients(runs, tmp_path, capsys):
    assert main(["inspect", str(runs["rnn"]), str(runs["lstm"]), "--gates", "--text", TEXT,
                 "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "several RUNs are for --gradients" in err

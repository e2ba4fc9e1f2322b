"""``rnnkit inspect``: look inside a trained run's model.

* ``--gradients`` -- gradient flow through time (:func:`inspect_gradients`): for a batch of the
  run's own training data, the norm of dL/dh_k at every step k and of dh_T/dh_k, for the model as
  initialised (rebuilt with the run's seed) and as trained (its checkpoint). Writes
  ``gradients.csv`` and ``gradients.png`` (log scale).
* ``--gates --text T`` -- gate traces (:func:`inspect_gates`): every gate and the cell state of
  every layer over the characters of T (a language-model run), as heatmaps with the characters
  along the time axis, and how often each gate is saturated (< 0.1 or > 0.9, Karpathy, Johnson &
  Fei-Fei 2015). Writes ``gates_layer<N>.png``, ``saturation.png``, ``gate_saturation.csv`` and
  ``gate_traces.csv``.
* ``--ctc IMAGE`` -- a handwriting run's per-step label probabilities under a line image, or
  under test line N when IMAGE is a number, or a connected-digit speech run's under a
  recording's features (:func:`inspect_ctc`, drawn by :func:`rnnkit.diagnostics.plot_ctc`).
  Writes ``ctc.png``.
* ``--attention SENTENCE`` -- a translate run's attention weights while it translates the
  sentence, source pieces against the pieces it emits (:func:`inspect_attention`, drawn by
  :func:`rnnkit.diagnostics.plot_attention`). Writes ``attention.png`` and ``attention.csv``.

Every problem (a missing run, a flag that does not apply to the run's task, no flag at all) is a
:class:`~rnnkit.training.errors.RunError` with a one-line message.

Example::

    >>> from rnnkit.inspection import inspect_gradients
    >>> flows = inspect_gradients("runs/lstm", "runs/lstm/inspect")  # doctest: +SKIP
    >>> flows["trained"].state_jacobian[0]  # ||dh_T/dh_0|| after training  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data import CharVocab
from rnnkit.diagnostics import (
    GATE_NAMES,
    GradientFlow,
    gate_saturation,
    gradient_flow,
    plot_attention,
    plot_ctc,
    plot_gate_traces,
    plot_gradient_flow,
    plot_saturation,
    unit_saturation,
    write_csv,
)
from rnnkit.layers import RecurrentLayer
from rnnkit.models import evaluation_mode
from rnnkit.models.ctc import greedy_decode
from rnnkit.tasks import build_task
from rnnkit.tasks.handwriting import TASK as HANDWRITING
from rnnkit.tasks.handwriting import digits_text, figure_line, load_recognizer
from rnnkit.tasks.speech import TASK as SPEECH
from rnnkit.tasks.speech import ctc_figure
from rnnkit.tasks.translate import TASK as TRANSLATE
from rnnkit.tasks.translate import attention_figure
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import pick_device
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import RunDirectory
from rnnkit.training.task import Task

GRADIENT_ROWS = 16
"""At most this many rows of the run's first training batch are used for ``--gradients``."""


@dataclass
class LoadedRun:
    """A run's settings, its task (data, loss), and its model before and after training."""

    path: Path
    config: TrainConfig
    task: Task
    initial: nn.Module
    trained: nn.Module
    step: int
    saved: dict
    """What the checkpoint keeps about the task (e.g. model sizes and the vocabulary)."""


def load_run(run_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedRun:
    """Open a run directory: its task with the model as initialised and as trained.

    The initial model is rebuilt exactly as ``rnnkit train`` built it (``torch.manual_seed`` with
    the run's seed, then the task's builder); the trained one is a copy loaded from the best
    checkpoint (else the last). Both are in eval mode (no dropout).

    Raises:
        RunError: no such run directory, no checkpoint, or a checkpoint of another model.
    """
    run = RunDirectory.open(run_dir)
    config = run.read_config()
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(config.seed)
        task = build_task(config, device, checkpoint.info.get("task"))
    initial = task.model
    trained = copy.deepcopy(initial)
    checkpoint.restore_model(trained)
    initial.eval()
    trained.eval()
    return LoadedRun(run.path, config, task, initial, trained, int(checkpoint.info.get("step", 0)),
                     checkpoint.info.get("task") or {})


def recurrent_layer(model: nn.Module, what: str = "--gradients") -> RecurrentLayer:
    """The model's recurrent layer: ``model.layer``, else its only rnnkit recurrent layer."""
    layer = getattr(model, "layer", None)
    if isinstance(layer, RecurrentLayer):
        return layer
    layers = [m for m in model.modules() if isinstance(m, RecurrentLayer)]
    if len(layers) != 1:
        raise RunError(f"{what}: the model has {len(layers)} rnnkit recurrent layers; "
                       "inspection needs exactly one")
    return layers[0]


def _rows(value, rows: int):
    """The first ``rows`` rows of a tensor, or of each tensor of a tuple."""
    if isinstance(value, tuple):
        return tuple(_rows(v, rows) for v in value)
    return value[:rows] if isinstance(value, Tensor) else value


def final_step_loss(outputs, targets) -> Tensor | None:
    """The cross-entropy of the last step alone, for a model that scores a class at every
    step (logits (B, T, K) for class indices (B, T): a language model, copy memory); else
    None."""
    if (isinstance(outputs, Tensor) and isinstance(targets, Tensor) and outputs.dim() == 3
            and targets.dim() == 2 and not targets.is_floating_point()
            and outputs.shape[:2] == targets.shape[:2]):
        return F.cross_entropy(outputs[:, -1].float(), targets[:, -1])
    return None


def model_gradient_flow(model: nn.Module, task: Task, batch_step: int = 0,
                        rows: int = GRADIENT_ROWS, jacobian: bool = True) -> GradientFlow:
    """Gradient flow through the model's recurrent layer on batch ``batch_step`` of the task.

    The loss is the model's loss on the first ``rows`` rows of the batch, from a zero state (in
    eval mode, so without dropout or a training-only penalty). When the model scores a class at
    every step (a language model), the final step's loss alone is measured too
    (:func:`final_step_loss`, :attr:`GradientFlow.final_loss_gradient`): each h_k reaches it
    only through time.

    Raises:
        RunError: the layer cannot be unrolled (bidirectional, or the model passes lengths).
    """
    layer = recurrent_layer(model)
    batch = task.batch_at(batch_step)
    inputs, targets = _rows(batch.inputs, rows), _rows(batch.targets, rows)

    def compute_loss():
        outputs, _, loss = model(inputs, None, targets)
        final = final_step_loss(outputs, targets)
        return loss if final is None else (loss, final)

    try:
        return gradient_flow(layer, compute_loss, jacobian=jacobian)
    except ValueError as err:
        raise RunError(f"--gradients does not apply to this model: {err}") from None


def _run_flows(run_dir: str | os.PathLike[str], device: str | torch.device, rows: int,
               jacobian: bool) -> tuple[LoadedRun, dict[str, GradientFlow]]:
    """A run and the gradient flows of its model as initialised and as trained."""
    loaded = load_run(run_dir, device)
    flows = {name: model_gradient_flow(model, loaded.task, rows=rows, jacobian=jacobian)
             for name, model in (("initial", loaded.initial), ("trained", loaded.trained))}
    return loaded, flows


def _flow_rows(flows: dict[str, GradientFlow], **columns: object) -> list[dict[str, object]]:
    """CSV rows, one per model and step k, led by ``columns``."""
    rows_out = []
    for name, flow in flows.items():
        for k in range(len(flow.loss_gradient)):
            rows_out.append({
                **columns, "model": name, "step": k,
                "loss_gradient": float(flow.loss_gradient[k]),
                "final_loss_gradient": "" if flow.final_loss_gradient is None
                else float(flow.final_loss_gradient[k]),
                "state_jacobian": "" if flow.state_jacobian is None
                else float(flow.state_jacobian[k]),
            })
    return rows_out


def _shown(flow: GradientFlow) -> GradientFlow:
    """What the plot shows: the final step's loss where there is one (it reaches h_k only
    through time), else the loss."""
    gradient = flow.final_loss_gradient if flow.final_loss_gradient is not None \
        else flow.loss_gradient
    return GradientFlow(gradient, flow.state_jacobian)


def inspect_gradients(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                      device: str | torch.device = "cpu", rows: int = GRADIENT_ROWS,
                      jacobian: bool = True) -> dict[str, GradientFlow]:
    """Write ``gradients.csv`` and ``gradients.png`` for a run; return the flows.

    Measures :func:`model_gradient_flow` on the run's first training batch for the model as
    initialised and as trained. CSV columns: ``model`` (initial / trained), ``step`` k,
    ``loss_gradient`` ‖dL/dh_k‖, ``final_loss_gradient`` ‖dL_T/dh_k‖ (empty where the loss has
    no per-step terms), ``state_jacobian`` ‖dh_T/dh_k‖_F.

    Returns:
        ``{"initial": GradientFlow, "trained": GradientFlow}``.
    """
    loaded, flows = _run_flows(run_dir, device, rows, jacobian)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(_flow_rows(flows), out / "gradients.csv")
    cell = loaded.config.cell
    shown = {f"{cell}, {name}" + (" (step 0)" if name == "initial" else f" (step {loaded.step})"):
             _shown(flow) for name, flow in flows.items()}
    what = "final step's loss" if flows["trained"].final_loss_gradient is not None else "loss"
    plot_gradient_flow(shown, out / "gradients.png",
                       title=f"{loaded.path.name}: gradient of the {what} (left) and of h_T "
                             f"(right) with respect to h_k")
    return flows


def compare_gradients(run_dirs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                      device: str | torch.device = "cpu", rows: int = GRADIENT_ROWS,
                      jacobian: bool = True) -> dict[str, dict[str, GradientFlow]]:
    """:func:`inspect_gradients` for several runs in one figure, one line per run and model
    (e.g. a tanh RNN and an LSTM trained on the same task: the RNN's gradient vanishes).

    Writes ``gradients.csv`` (the columns of :func:`inspect_gradients` after ``run`` and
    ``cell``) and ``gradients.png``. Returns ``{run folder name: flows}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, GradientFlow]] = {}
    rows_out: list[dict[str, object]] = []
    shown: dict[str, GradientFlow] = {}
    for run_dir in run_dirs:
        loaded, flows = _run_flows(run_dir, device, rows, jacobian)
        name = loaded.path.name
        if name in results:
            raise RunError(f"{run_dir}: two runs are named {name!r}; give runs whose folders "
                           "have different names")
        results[name] = flows
        rows_out += _flow_rows(flows, run=name, cell=loaded.config.cell)
        for model, flow in flows.items():
            shown[f"{name} ({loaded.config.cell}), {model}"] = _shown(flow)
    write_csv(rows_out, out / "gradients.csv")
    plot_gradient_flow(shown, out / "gradients.png",
                       title="gradient of the (final step's) loss (left) and of h_T (right) "
                             "with respect to h_k")
    return results


def inspect_gates(run_dir: str | os.PathLike[str], text: str, out_dir: str | os.PathLike[str],
                  device: str | torch.device = "cpu") -> dict[int, dict[str, dict[str, float]]]:
    """Gate traces of a language-model run's trained model over ``text``.

    Writes, per layer N, ``gates_layer<N>.png`` (a heatmap per gate and for the cell state and
    h, units against characters); ``saturation.png`` (each gate unit's fraction of steps below
    0.1 against above 0.9, as in Karpathy et al. 2015's Figure 5, top layer);
    ``gate_saturation.csv`` (per layer and gate: the fractions below 0.1 and above 0.9 and the
    mean) and ``gate_traces.csv`` (per step and gate: the character, the mean activation and the
    fractions of units below 0.1 and above 0.9).

    Returns:
        ``{layer: {gate: {"left_saturated", "right_saturated", "mean"}}}``.

    Raises:
        RunError: not a language-model run, an empty text, or a character the model never saw.
    """
    run = RunDirectory.open(run_dir)
    config = run.read_config()
    if config.task != "lm":
        raise RunError(f"--gates reads --text through a character language model; {run.path} "
                       f"is a {config.task!r} run (use --gradients)")
    if not text:
        raise RunError("--text must not be empty; give the characters to read")
    loaded = load_run(run_dir, device)
    traces = _text_traces(loaded, text, torch.device(device))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(text)
    stats: dict[int, dict[str, dict[str, float]]] = {}
    saturation_rows, step_rows = [], []
    for index, layer_traces in enumerate(traces):
        one = {name: value[0].cpu() for name, value in layer_traces.items()}
        plot_gate_traces(one, labels, out / f"gates_layer{index}.png",
                         title=f"{loaded.path.name}: {config.cell}, layer {index}, step "
                               f"{loaded.step}")
        stats[index] = gate_saturation(one)
        for gate, values in stats[index].items():
            saturation_rows.append({"layer": index, "gate": gate, **values})
        step_rows += _gate_step_rows(index, one, labels)
    if not saturation_rows:
        raise RunError(f"--gates: a {config.cell} cell has no gates (its traces are "
                       f"{', '.join(traces[0])}); inspect a gated cell's run")
    write_csv(saturation_rows, out / "gate_saturation.csv")
    write_csv(step_rows, out / "gate_traces.csv")
    top = {name: value[0].cpu() for name, value in traces[-1].items()}
    plot_saturation(unit_saturation(top), out / "saturation.png",
                    title=f"{config.cell}, layer {len(traces) - 1}: saturation per unit")
    return stats


def _text_traces(loaded: LoadedRun, text: str, device: torch.device) -> list[dict[str, Tensor]]:
    """The traces of every layer of a language model's recurrent layer over ``text`` (one
    sequence); a character the model reads as its unknown symbol counts as one, and one it
    cannot read (a vocabulary without an unknown symbol) raises RunError."""
    model = loaded.trained
    vocab = CharVocab.from_dict(loaded.saved["vocab"])
    unknown = next((char for char in text if char not in vocab), None)
    if unknown is not None and vocab.unknown_id is None:
        raise RunError(f"--text: character {unknown!r} (U+{ord(unknown):04X}) is not in the "
                       f"model's vocabulary of {len(vocab)} characters")
    ids = vocab.encode(text).unsqueeze(0).to(device)
    layer = recurrent_layer(model, "--gates")
    with torch.no_grad():
        _, _, traces = layer(model.embedding(ids), return_traces=True)
    return traces


def _gate_step_rows(layer: int, traces: dict[str, Tensor], labels: list[str]
                    ) -> list[dict[str, object]]:
    """CSV rows of ``gate_traces.csv``: per gate and step of one layer, the character read,
    the mean activation and the fractions of units below 0.1 and above 0.9."""
    rows: list[dict[str, object]] = []
    for name, value in traces.items():
        if name not in GATE_NAMES:
            continue
        for t, char in enumerate(labels):
            step = value[t]
            rows.append({"layer": layer, "step": t, "char": char, "gate": name,
                         "mean": float(step.mean()),
                         "below_0.1": float((step < 0.1).float().mean()),
                         "above_0.9": float((step > 0.9).float().mean())})
    return rows


def inspect_ctc(run_dir: str | os.PathLike[str], source: str,
                out_dir: str | os.PathLike[str]) -> Path:
    """``ctc.png`` of a handwriting run for an image file, or test line N if ``source`` is
    all digits: the line and, under it, the model's probability of each digit and of the blank
    at every column (:func:`rnnkit.diagnostics.plot_ctc`); of a connected-digit speech run for
    a recording: its log-mel features and the probabilities at every step. Returns the path
    written."""
    run = RunDirectory.open(run_dir)
    config = run.read_config()
    if config.task == SPEECH:
        features, probs, title = ctc_figure(run.path, source)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return plot_ctc(features, probs, out / "ctc.png", title=title,
                        step_name="time step (20 ms)")
    if config.task != HANDWRITING:
        raise RunError(f"--ctc needs a handwriting run (rnnkit train --task handwriting) or a "
                       f"connected-digit speech run; {run.path} is a {config.task!r} run")
    line_source: str | int = int(source) if source.isdigit() else source
    if isinstance(line_source, str) and not Path(line_source).is_file():
        raise RunError(f"--ctc {source}: no such image file; give a PNG or the number of a "
                       "test line")
    model, _ = load_recognizer(run.path)
    line, title = figure_line(line_source, model.config.line_height)
    with evaluation_mode(model):
        log_probs = model(torch.from_numpy(line.T).unsqueeze(0)).outputs[0]
    title += f"read {digits_text(greedy_decode(log_probs)[0])}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return plot_ctc(line, log_probs.exp().numpy(), out / "ctc.png", title=title)


def inspect_attention(run_dir: str | os.PathLike[str], sentence: str,
                      out_dir: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """``attention.png`` and ``attention.csv`` of a translate run for ``sentence``: where its
    decoder attends, over the source pieces, while emitting each piece of its greedy
    translation. Returns the two paths and the translation."""
    run = RunDirectory.open(run_dir)
    task = run.read_config().task
    if task != TRANSLATE:
        raise RunError(f"--attention needs a translate run (rnnkit train --task translate); "
                       f"{run.path} is a {task!r} run")
    weights, source, target, title = attention_figure(run.path, sentence)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"target_index": t, "target_piece": target[t], "source_index": s,
             "source_piece": source[s], "weight": float(weights[t, s])}
            for t in range(len(target)) for s in range(len(source))]
    csv_path = write_csv(rows, out / "attention.csv")
    png = plot_attention(weights.numpy(), source, target, out / "attention.png", title=title)
    return png, csv_path, title.split("\n-> ", 1)[1]


def inspect_run(args: argparse.Namespace) -> int:
    """``rnnkit inspect RUN [RUN ...] [--gradients] [--gates --text T] [--ctc IMAGE] [--out DIR]``.

    Prints the path of every file written. Returns the exit code (0); problems raise RunError.
    """
    gates = getattr(args, "gates", False)
    text = getattr(args, "text", None)
    ctc = getattr(args, "ctc", None)
    attention = getattr(args, "attention", None)
    gradients = getattr(args, "gradients", False)
    if text is not None and not gates:
        raise RunError("--text is read by --gates; add --gates")
    if not (gradients or gates or ctc or attention):
        raise RunError("nothing to inspect; give --gradients, --gates --text TEXT, or --ctc "
                       "IMAGE")
    if gates and text is None:
        raise RunError("--gates needs --text TEXT: the characters to read")
    run_paths = args.run if isinstance(args.run, list) else [args.run]
    runs = [RunDirectory.open(path) for path in run_paths]
    if len(runs) > 1 and (gates or ctc or attention):
        raise RunError("--gates, --ctc and --attention read one run; several RUNs are for "
                       "--gradients")
    run = runs[0]
    out = Path(args.out) if getattr(args, "out", None) else run.path / "inspect"
    device = pick_device(getattr(args, "device", "cpu") or "cpu")
    if ctc:
        print(f"ctc: {inspect_ctc(run.path, ctc, out)}")
    if attention:
        png, csv_path, translation = inspect_attention(run.path, attention, out)
        print(f"translation: {translation}\nattention: {png}, {csv_path}")
    if gradients:
        if len(runs) == 1:
            all_flows = {"": inspect_gradients(run.path, out, device)}
        else:
            all_flows = compare_gradients([r.path for r in runs], out, device)
        for run_name, flows in all_flows.items():
            for name, flow in flows.items():
                profile = _shown(flow).loss_gradient
                print(f"{run_name + ' ' if run_name else ''}{name}: ||dL/dh_0|| = "
                      f"{float(profile[0]):.3g}, ||dL/dh_T|| = {float(profile[-1]):.3g}"
                      + ("" if flow.state_jacobian is None
                         else f", ||dh_T/dh_0|| = {float(flow.state_jacobian[0]):.3g}"))
        print(f"gradients: {out / 'gradients.csv'}, {out / 'gradients.png'}")
    if gates:
        stats = inspect_gates(run.path, text, out, device)
        for layer, gate_stats in stats.items():
            for gate, values in gate_stats.items():
                print(f"layer {layer} gate {gate}: {values['left_saturated']:.1%} < 0.1, "
                      f"{values['right_saturated']:.1%} > 0.9, mean {values['mean']:.3f}")
        print(f"gates: {out}/gates_layer*.png, {out / 'saturation.png'}, "
              f"{out / 'gate_saturation.csv'}, {out / 'gate_traces.csv'}")
    return 0


__all__ = [
    "LoadedRun", "compare_gradients", "final_step_loss", "inspect_attention", "inspect_ctc",
    "inspect_gates",
    "inspect_gradients", "inspect_run", "load_run", "model_gradient_flow", "recurrent_layer",
]

"""Gradient flow through time: how much the loss, and the last state, depend on each step's h.

For a recurrent layer the total derivative dL/dh_k collects every path from step k to the loss,
through all later steps. Its norm against k shows whether a network can learn long-range
dependencies: for a tanh RNN it shrinks geometrically as k moves away from the loss (the vanishing
gradient); an LSTM's cell state, gated by f_t close to 1, keeps it alive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.diagnostics.plots import plt, save_figure
from rnnkit.layers import RecurrentLayer


@contextmanager
def recording_states(layer: RecurrentLayer) -> Iterator[list[Tensor]]:
    """Run ``layer`` step by step while active and record its top layer's h_k.

    Inside the block, every call of the layer (directly or through a model that owns it) fills the
    yielded list with the (B, H) tensors h_0 .. h_{T-1} of the top layer, each of which is the very
    tensor the next step reads, so autograd gives the total derivative with respect to it.
    Unidirectional layers only, without ``lengths``; dropout between layers is not applied.
    """
    if not isinstance(layer, RecurrentLayer):
        raise TypeError(f"layer: expected an rnnkit recurrent layer, got {type(layer).__name__}")
    if layer.bidirectional:
        raise ValueError("layer: gradient flow through time needs a unidirectional layer, got "
                         "bidirectional=True")
    recorded: list[Tensor] = []

    def unrolled(input: Tensor, hx=None, **kwargs):
        if kwargs.get("lengths") is not None or kwargs.get("return_traces"):
            raise ValueError("recording_states: lengths= and return_traces= are not supported")
        tokens = kwargs.get("tokens")
        if tokens is not None:  # input is the table of the first layer's projected inputs
            input = F.embedding(tokens, input)
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and layer.batch_first:
            x = x.transpose(0, 1)
        state = layer._initial_state(hx, x.shape[1], batched, x)
        recorded.clear()
        finals = []
        lower_cells: list[Tensor] | None = None
        for index, cell_math in enumerate(layer.layer_maths):
            params = layer.cell_parameters(index)
            if tokens is not None and index == 0:  # the rows hold W_ih x + b_ih already
                params = {k: v for k, v in params.items() if k not in ("weight_ih", "bias_ih")}
            params = cell_math.prepare(params)
            projected = cell_math.project_input(params, x)
            layer_state = tuple(s[index] for s in state)
            outputs, cells = [], []
            for t in range(x.shape[0]):
                lower = None if lower_cells is None else lower_cells[t]
                layer_state, traces = cell_math.step(params, projected[t], layer_state,
                                                     kwargs.get("start_step", 0) + t, lower, True)
                outputs.append(layer_state[0])
                cells.append(traces.get("c"))
            finals.append(layer_state)
            lower_cells = cells
            x = torch.stack(outputs)
        recorded.extend(outputs)
        final = tuple(torch.stack([f[k] for f in finals]) for k in range(len(finals[0])))
        if not batched:
            x, final = x.squeeze(1), tuple(s.squeeze(1) for s in final)
        elif layer.batch_first:
            x = x.transpose(0, 1)
        return x, (final[0] if len(final) == 1 else final)

    layer.forward = unrolled
    try:
        yield recorded
    finally:
        del layer.forward


@dataclass
class GradientFlow:
    """Per-step gradient norms, each (T,), averaged over the batch.

    Attributes:
        loss_gradient: ||dL/dh_k|| for k = 0 .. T-1.
        state_jacobian: ||dh_{T-1}/dh_k||_F (Frobenius norm of the Jacobian), or None.
        final_loss_gradient: ||dL_T/dh_k|| for a second loss L_T that only the last step
            scores (for a model with a loss term per step, e.g. a language model), or None.
            Every h_k reaches L_T only through time, so this is the profile that shows a
            vanishing gradient; ``loss_gradient`` also holds each step's own term.
    """

    loss_gradient: Tensor
    state_jacobian: Tensor | None
    final_loss_gradient: Tensor | None = None


def gradient_flow(
    layer: RecurrentLayer,
    compute_loss: Callable[[], Tensor],
    jacobian: bool = True,
) -> GradientFlow:
    """Measure how the gradient flows back through time in ``layer``.

    Args:
        layer: the recurrent layer inside the model (e.g. ``model.layer``).
        compute_loss: runs the model on a batch and returns the scalar loss, or a pair (loss,
            final-step loss) to also measure :attr:`GradientFlow.final_loss_gradient`; it is
            called once, with the layer recording its states.
        jacobian: also compute ||dh_{T-1}/dh_k||_F exactly (one backward pass per hidden unit).

    Returns:
        A :class:`GradientFlow` of per-step norms, averaged over the batch.

    Example::

        >>> from rnnkit.diagnostics import gradient_flow
        >>> layer = rnnkit.RNN(2, 8, batch_first=True)
        >>> x = torch.randn(4, 30, 2)
        >>> flow = gradient_flow(layer, lambda: layer(x)[0][:, -1].pow(2).sum())
        >>> flow.loss_gradient.shape
        torch.Size([30])
    """
    with recording_states(layer) as states:
        loss = compute_loss()
        if not states:
            raise ValueError("compute_loss: the layer was not called, so no states were recorded")
        steps = list(states)
    final_loss = None
    if isinstance(loss, tuple):
        loss, final_loss = loss

    def norms(target: Tensor, keep: bool) -> Tensor:
        grads = torch.autograd.grad(target, steps, retain_graph=keep, allow_unused=True)
        return torch.stack([
            torch.zeros((), device=steps[0].device) if g is None else g.norm(dim=-1).mean()
            for g in grads
        ]).detach().cpu()

    loss_gradient = norms(loss, jacobian or final_loss is not None)
    final_loss_gradient = None if final_loss is None else norms(final_loss, jacobian)
    if not jacobian:
        return GradientFlow(loss_gradient, None, final_loss_gradient)
    last = steps[-1]
    squares = [torch.zeros(last.shape[0], dtype=last.dtype, device=last.device) for _ in steps]
    for unit in range(last.shape[-1]):
        # Each example's last state depends only on its own past, so summing over the batch
        # gives every example's Jacobian row at once.
        rows = torch.autograd.grad(last[:, unit].sum(), steps, retain_graph=True,
                                   allow_unused=True)
        for k, row in enumerate(rows):
            if row is not None:
                squares[k] += row.detach().pow(2).sum(dim=-1)
    state_jacobian = torch.stack([s.sqrt().mean() for s in squares]).cpu()
    return GradientFlow(loss_gradient, state_jacobian, final_loss_gradient)


def plot_gradient_flow(
    flows: Mapping[str, GradientFlow],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Plot per-step gradient norms on a log scale: one line per entry of ``flows``.

    The left panel shows ``loss_gradient`` (‖dL/dh_k‖) against the step k; the right panel,
    drawn when any entry has one, ``state_jacobian`` (‖dh_{T-1}/dh_k‖_F). A norm that underflows
    to 0 is left out of the log-scale line (the line stops where the gradient has vanished).

    Args:
        flows: label (e.g. ``"lstm, trained"``) -> :class:`GradientFlow`.
        path: the PNG to write.
        title: a title over both panels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    jacobians = any(flow.state_jacobian is not None for flow in flows.values())
    figure, axes = plt.subplots(1, 2 if jacobians else 1, figsize=(11 if jacobians else 6.5, 4),
                                dpi=110, squeeze=False)
    panels = [("loss_gradient", "‖dL/dh_k‖ (batch mean)")]
    if jacobians:
        panels.append(("state_jacobian", "‖dh_T/dh_k‖_F (batch mean)"))
    for axis, (attribute, label) in zip(axes[0], panels):
        for name, flow in flows.items():
            values = getattr(flow, attribute)
            if values is None:
                continue
            steps = [k for k, v in enumerate(values.tolist()) if v > 0]
            axis.plot(steps, [float(values[k]) for k in steps], label=name, lw=1.3)
        axis.set(xlabel="step k", ylabel=label, yscale="log")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)

"""The sequence layer shared by every cell: stacking, both directions, ragged batches, engines.

:class:`RecurrentLayer` keeps the contract of ``torch.nn.RNN/LSTM/GRU``: the same constructor
arguments, parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), input and output shapes,
so a torch state_dict loads into it and back. A cell family only says which :class:`CellMath` each
layer of the stack uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells.base import CellMath, Params, State, Traces
from rnnkit.checks import (
    check_input_tensor,
    check_lengths,
    check_probability,
    check_size,
    check_state,
)
from rnnkit.engine.fused import fused_runs, fused_supports, native_bf16_products_run, run_fused
from rnnkit.engine.native import run_native
from rnnkit.engine.reference import Zoneout, run_reference, step_mask
from rnnkit.engine.scan import run_scan
from rnnkit.masks import bernoulli_mask, rounded_probability

ENGINES = ("auto", "native", "scan", "reference", "fused")
FUSED_FIRST = ("RNN_TANH", "RNN_RELU", "GRU")
"""torch modes of the cells that ``auto`` runs on the fused kernels (where they run) rather than
on torch's own: on the CPU torch has oneDNN kernels for the LSTM only, and the fused Elman RNN
and GRU are faster than torch's at every benchmark shape (benchmarks/RESULTS.md)."""


def reverse_padded(sequence: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence within its own length: (T, B, ...) -> (T, B, ...).

    Steps after a sequence's end stay where they are, so applying it twice is the identity.
    """
    if lengths is None:
        return sequence.flip(0)
    steps = sequence.shape[0]
    time = torch.arange(steps, device=sequence.device).unsqueeze(1)
    ends = lengths.to(sequence.device).unsqueeze(0)
    index = torch.where(time < ends, ends - 1 - time, time)
    index = index.view(steps, -1, *([1] * (sequence.dim() - 2))).expand_as(sequence)
    return sequence.gather(0, index)


class RecurrentLayer(nn.Module):
    """A stack of recurrent layers, optionally bidirectional, with torch's ``nn.RNN`` contract.

    Subclasses implement :meth:`layer_math`. See ``rnnkit.LSTM`` for the full documentation of
    arguments, inputs and outputs; every layer class shares it.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        learn_initial_state: bool = False,
        weight_dropout: float = 0.0,
        zoneout_hidden: float = 0.0,
        zoneout_cell: float = 0.0,
        engine: str | None = None,
    ) -> None:
        super().__init__()
        check_size("input_size", input_size)
        check_size("hidden_size", hidden_size)
        check_size("num_layers", num_layers)
        dropout = check_probability("dropout", dropout)
        if engine is not None and engine not in ENGINES:
            raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.learn_initial_state = learn_initial_state
        self.engine = engine
        self.layer_maths = [self.layer_math(layer) for layer in range(num_layers)]
        top = self.layer_maths[0]
        directions = 2 if bidirectional else 1
        factory = {"device": device, "dtype": dtype}
        for layer, cell_math in enumerate(self.layer_maths):
            layer_input = input_size if layer == 0 else top.output_size * directions
            for direction in range(directions):
                suffix = self._suffix(layer, direction)
                shapes = cell_math.parameter_shapes(layer_input, bias)
                for name, shape in shapes.items():
                    self.register_parameter(
                        name + suffix, nn.Parameter(torch.empty(shape, **factory))
                    )
        if learn_initial_state:
            for name, size in zip(top.state_names, top.state_sizes()):
                self.register_parameter(
                    f"initial_{name}",
                    nn.Parameter(torch.zeros(num_layers * directions, size, **factory)),
                )
        self.reset_parameters()
        self.weight_dropout = weight_dropout
        self.zoneout_hidden = zoneout_hidden
        self.zoneout_cell = zoneout_cell
        if engine is not None:
            self._select_engine(return_traces=False)  # reject an impossible engine now

    def layer_math(self, layer: int) -> CellMath:
        """The cell of layer ``layer`` (0-based) of the stack."""
        raise NotImplementedError

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    RECURRENT_WEIGHTS = ("weight_hh", "weight_gr")
    """Names of the hidden-to-hidden weights that ``weight_dropout`` drops."""

    @property
    def weight_dropout(self) -> float:
        """DropConnect on the recurrent weights (Wan et al. 2013; Merity et al. 2018): in
        training, each forward call multiplies every ``weight_hh`` (and ``weight_gr``) by one
        mask of Bernoulli(1 - p) / (1 - p) entries, shared by all steps and sequences of the
        call; 0 = off. Settable, e.g. to switch it on for a layer that was built without."""
        return self._weight_dropout

    @weight_dropout.setter
    def weight_dropout(self, value: float) -> None:
        value = check_probability("weight_dropout", value, below_one=True)
        if value and not any(name in self.RECURRENT_WEIGHTS for name in
                             self.layer_maths[0].parameter_shapes(1, self.bias)):
            raise ValueError(f"weight_dropout: {type(self).__name__} has no recurrent weights "
                             f"to drop, so expected 0, got {value}")
        self._weight_dropout = value

    @property
    def zoneout_hidden(self) -> float:
        """Zoneout on the hidden state (Krueger et al. 2017), 0 = off: in training, each unit
        of each sequence keeps its previous value h_{t-1} at each step with this probability
        (else it takes the new one); in evaluation, h_t = z h_{t-1} + (1 - z) h~_t, the
        expectation, where h~_t is what the cell computes. The probability is rounded to a
        multiple of 1/65536 (:func:`rnnkit.masks.rounded_probability`). Not with
        ``proj_size``. Settable."""
        return self._zoneout_hidden

    @zoneout_hidden.setter
    def zoneout_hidden(self, value: float) -> None:
        value = check_probability("zoneout_hidden", value, below_one=True)
        if value and getattr(self.layer_maths[0], "proj_size", 0):
            raise ValueError(f"zoneout_hidden: not with proj_size (the projected h_t is not "
                             f"the cell's own state), so expected 0, got {value}")
        self._zoneout_hidden = rounded_probability(value)

    @property
    def zoneout_cell(self) -> float:
        """Zoneout on the LSTM's cell state c, as :attr:`zoneout_hidden` on h: c_t keeps
        c_{t-1} with this probability in training, and is z c_{t-1} + (1 - z) c~_t in
        evaluation; h_t is computed from c~_t, the cell the gates made. Only for cells with a
        cell state (the LSTM family and the Depth-Gated LSTM). Settable."""
        return self._zoneout_cell

    @zoneout_cell.setter
    def zoneout_cell(self, value: float) -> None:
        value = check_probability("zoneout_cell", value, below_one=True)
        if value and "c" not in self.layer_maths[0].state_names:
            raise ValueError(f"zoneout_cell: {type(self).__name__} has no cell state c, so "
                             f"expected 0, got {value}")
        self._zoneout_cell = rounded_probability(value)

    def _zoneout(self, steps: int, batch: int, like: Tensor) -> Zoneout | None:
        """The keep weights of one layer and direction for ``steps`` x ``batch``: for h and
        for c, a fresh (T, B, size) 0/1 mask in training, the rate in evaluation, 0.0 where
        off; None when zoneout is off."""
        rates = (self._zoneout_hidden, self._zoneout_cell)
        if not any(rates):
            return None
        if not self.training:
            return rates
        sizes = self.layer_maths[0].state_sizes()
        return tuple(bernoulli_mask((steps, batch, size), rate, like) if rate else 0.0
                     for rate, size in zip(rates, sizes))

    def _dropped(self, name: str, weight: Tensor) -> Tensor:
        """``weight`` as a step uses it: with DropConnect if it is a recurrent weight and the
        layer is training with ``weight_dropout`` > 0."""
        if self._weight_dropout and self.training and name in self.RECURRENT_WEIGHTS:
            return F.dropout(weight, self._weight_dropout, training=True)
        return weight

    def cell_parameters(self, layer: int, direction: int = 0) -> Params:
        """The parameters of one layer and direction, by their cell names (``weight_ih``, ...)."""
        suffix = self._suffix(layer, direction)
        names = self.layer_maths[layer].parameter_shapes(1, self.bias)
        return {name: getattr(self, name + suffix) for name in names}

    def reset_parameters(self) -> None:
        """Re-initialise every parameter as each layer's cell prescribes; initial states to 0."""
        with torch.no_grad():
            for layer, cell_math in enumerate(self.layer_maths):
                for direction in range(self.num_directions):
                    cell_math.reset_parameters(self.cell_parameters(layer, direction))
            for name in self.layer_maths[0].state_names:
                initial = getattr(self, f"initial_{name}", None)
                if initial is not None:
                    initial.zero_()

    def flatten_parameters(self) -> None:
        """No-op, kept so code written for ``torch.nn.LSTM`` runs unchanged."""

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("weight_dropout", 0.0), ("zoneout_hidden", 0.0),
                              ("zoneout_cell", 0.0),
                              ("bidirectional", False), ("learn_initial_state", False),
                              ("engine", None)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | State | None = None,
        *,
        lengths: Tensor | Sequence[int] | None = None,
        return_traces: bool = False,
        start_step: int = 0,
        tokens: Tensor | None = None,
    ):
        """Run the stack over a sequence; see the class docstring for shapes.

        ``start_step`` is the time index of the first step, for cells whose step depends on it
        (the Clockwork RNN's clock): pass the number of steps already run when continuing a
        sequence chunk by chunk.

        ``tokens``: the sequence as token ids, int64 (T, B) ((B, T) with ``batch_first``, or
        unbatched (T,)), with ``input`` a table (V, rows of ``weight_ih_l0``) whose row v is
        the first layer's input projection ``W_ih x + b_ih`` of token v (:meth:`project_input`
        of the token embeddings). A language model computes the table once per call in place
        of a matrix product over all steps; the fused LSTM kernels read its rows step by step.
        Single-direction stacks only, without ``lengths``; not on torch's kernels, which
        "auto" then skips.
        """
        weight = self.weight_ih_l0
        packed = input if isinstance(input, PackedSequence) else None
        if tokens is not None:
            inputs, tokens, batched = self._token_inputs(input, tokens, lengths)
            steps, batch = tokens.shape
        else:
            if packed is not None:
                if lengths is not None:
                    raise ValueError("lengths: must be None for PackedSequence input, which "
                                     "carries its own lengths")
                check_input_tensor(packed.data, weight, ranks=(2,),
                                   what="(sum of lengths, features)")
                inputs, lengths = pad_packed_sequence(packed)
                batched = True
            else:
                check_input_tensor(input, weight, ranks=(2, 3),
                                   what="(T, B, input_size), (B, T, input_size) with "
                                        "batch_first, or unbatched (T, input_size)")
                batched = input.dim() == 3
                if not batched:
                    if lengths is not None:
                        raise ValueError(f"lengths: only for batched (3-D) input, got "
                                         f"unbatched input of shape {tuple(input.shape)}, "
                                         f"which is used whole")
                    inputs = input.unsqueeze(1)
                else:
                    inputs = input.transpose(0, 1) if self.batch_first else input
            if inputs.shape[-1] != self.input_size:
                shape = tuple(input.shape if packed is None else packed.data.shape)
                raise ValueError(f"input: expected feature size input_size={self.input_size}, "
                                 f"got shape {shape}")
            steps, batch = inputs.shape[0], inputs.shape[1]
        if steps == 0:
            raise ValueError("input: expected at least one time step, got 0")
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
            if bool((lengths == steps).all()):
                lengths = None
            else:
                # Padding may hold anything (NaN for missing data): zero it so that nothing,
                # not even a NaN times a zero mask, reaches the outputs or the gradients.
                inputs = inputs.masked_fill(~step_mask(lengths, steps, inputs.device), 0)
        state = self._initial_state(hx, batch, batched, inputs)
        check_size("start_step", start_step, minimum=0)

        engine = self._select_engine(return_traces, inputs, tokens is not None)
        if engine == "native":
            outputs, final = run_native(
                self.layer_maths[0].native_mode, self._flat_weights(), inputs, state, lengths,
                has_biases=self.bias, num_layers=self.num_layers, dropout=self.dropout,
                training=self.training, bidirectional=self.bidirectional,
            )
            traces = None
        else:
            outputs, final, traces = self._run_stack(inputs, state, lengths, engine,
                                                     return_traces, start_step, tokens)

        if packed is not None:
            output = _repack(outputs, packed, lengths)
        elif not batched:
            output = outputs.squeeze(1)
        else:
            output = outputs.transpose(0, 1) if self.batch_first else outputs
        if not batched:
            final = tuple(s.squeeze(1) for s in final)
        result_state = final[0] if len(final) == 1 else final
        if not return_traces:
            return output, result_state
        traces = [self._arrange_trace(t, batched) for t in traces]
        return output, result_state, traces

    def _arrange_trace(self, traces: Traces, batched: bool) -> Traces:
        if not batched:
            return {name: value.squeeze(1) for name, value in traces.items()}
        if self.batch_first:
            return {name: value.transpose(0, 1) for name, value in traces.items()}
        return traces

    def _initial_state(self, hx: object, batch: int, batched: bool, inputs: Tensor) -> State:
        top = self.layer_maths[0]
        names, sizes = top.state_names, top.state_sizes()
        stacked = self.num_layers * self.num_directions
        if hx is not None:
            state = check_state(hx, names, sizes, (stacked,), batch, batched, inputs)
            return state if batched else tuple(s.unsqueeze(1) for s in state)
        if self.learn_initial_state:
            return tuple(getattr(self, f"initial_{name}").unsqueeze(1).expand(-1, batch, -1)
                         for name in names)
        return tuple(inputs.new_zeros(stacked, batch, size) for size in sizes)

    def _token_inputs(self, table: object, tokens: object,
                      lengths: object) -> tuple[Tensor, Tensor, bool]:
        """Check ``forward``'s table and tokens; returns the table, the tokens as (T, B) and
        whether the call is batched."""
        rows = self.weight_ih_l0.shape[0]
        check_input_tensor(table, self.weight_ih_l0, ranks=(2,),
                           what=f"a table (V, {rows}) of projected inputs, given tokens")
        if table.shape[1] != rows:
            raise ValueError(f"input: expected a table of {rows} columns (the rows of "
                             f"weight_ih_l0), got shape {tuple(table.shape)}")
        if not isinstance(tokens, Tensor):
            raise TypeError(f"tokens: expected an int64 torch.Tensor, got "
                            f"{type(tokens).__name__}")
        if tokens.dtype != torch.int64 or tokens.dim() not in (1, 2):
            raise ValueError(f"tokens: expected an int64 tensor (T, B), (B, T) with batch_first "
                             f"or (T,), got dtype {tokens.dtype} and shape {tuple(tokens.shape)}")
        if tokens.device != table.device:
            raise ValueError(f"tokens: expected device {table.device}, got {tokens.device}")
        if lengths is not None or self.bidirectional:
            raise ValueError("tokens: only for a single-direction layer without lengths")
        batched = tokens.dim() == 2
        if not batched:
            tokens = tokens.unsqueeze(1)
        elif self.batch_first:
            tokens = tokens.t()
        if tokens.numel() and not (0 <= int(tokens.min()) and int(tokens.max()) < table.shape[0]):
            raise ValueError(f"tokens: expected ids in [0, {table.shape[0]}) (the table's rows), "
                             f"got values in [{int(tokens.min())}, {int(tokens.max())}]")
        return table, tokens.contiguous(), batched

    def project_input(self, x: Tensor) -> Tensor:
        """The first layer's input projection ``W_ih x + b_ih`` of ``x`` (..., input_size) ->
        (..., rows of weight_ih_l0): the rows of the table that ``forward(..., tokens=)`` takes."""
        return self.layer_maths[0].project_input(self.cell_parameters(0), x)

    def engine_for(self, inputs: Tensor, *, return_traces: bool = False,
                   tokens: bool = False) -> str:
        """The engine a call with tensors like ``inputs`` (their device and dtype, and the
        autocast state), and with ``tokens`` or not, runs on: "native", "fused", "scan" or
        "reference"."""
        return self._select_engine(return_traces, inputs, tokens)

    def _select_engine(self, return_traces: bool, inputs: Tensor | None = None,
                       tokens: bool = False) -> str:
        """The engine of a call: the one asked for (``engine=`` or ``RNNKIT_ENGINE``), checked,
        or for "auto" the fastest that runs these cells on ``inputs``: torch's own kernels
        (but the fused ones for the RNN and GRU on the CPU, see :data:`FUSED_FIRST`, and for
        the LSTM too under bfloat16 autocast on a CPU that computes bfloat16 natively), else the
        fused kernels (CPU, float32/float64, compiled), else the parallel scan
        (MinGRU/MinLSTM), else the reference loop. Torch's kernels do not take projected
        inputs; with zoneout only the fused LSTM kernels and the reference loop run."""
        source = "engine" if self.engine else "RNNKIT_ENGINE"
        requested = self.engine or os.environ.get("RNNKIT_ENGINE", "auto")
        if requested not in ENGINES:
            raise ValueError(f"{source}: expected one of {ENGINES}, got {requested!r}")
        maths = self.layer_maths
        zoneout = bool(self._zoneout_hidden or self._zoneout_cell)
        native_ok = maths[0].native_mode is not None and not return_traces and all(
            m.native_mode == maths[0].native_mode for m in maths) and not tokens and not zoneout
        if requested == "native":
            if not native_ok:
                raise ValueError(f"{source}='native': {type(self).__name__} with these options "
                                 "is not one of torch's own cells "
                                 "(or traces, token inputs or zoneout were asked for); use "
                                 "'auto' or 'reference'")
            return "native"
        if requested == "fused" and not all(fused_supports(m, zoneout) for m in maths):
            raise ValueError(f"{source}='fused': no fused kernel for {type(self).__name__} "
                             "(they cover rnnkit's own cells, not a subclass that changes "
                             "the step, and zoneout only in the LSTM family); use 'auto' or "
                             "'reference'")
        if requested == "scan" and (zoneout or not all(m.parallel_scan for m in maths)):
            raise ValueError(f"{source}='scan': {type(self).__name__} is not linear in its "
                             "state, or has zoneout; only MinGRU and MinLSTM without zoneout "
                             "run as a parallel scan")
        if requested == "auto":
            # The LSTM stays on torch's kernels (see FUSED_FIRST), but for bfloat16 autocast
            # on a CPU that computes bfloat16 natively, where the fused kernels train faster.
            if (native_ok and maths[0].native_mode not in FUSED_FIRST
                    and not (inputs is not None and native_bf16_products_run(inputs))):
                return "native"
            if (inputs is not None and all(fused_supports(m, zoneout) for m in maths)
                    and fused_runs(inputs)):
                return "fused"
            if native_ok:
                return "native"
            return ("scan" if all(m.parallel_scan for m in maths) and not zoneout
                    else "reference")
        return requested

    def _flat_weights(self) -> list[Tensor]:
        weights = []
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        if getattr(self.layer_maths[0], "proj_size", 0):
            names.append("weight_hr")
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                suffix = self._suffix(layer, direction)
                weights.extend(self._dropped(name, getattr(self, name + suffix))
                               for name in names)
        return weights

    def _run_stack(
        self, inputs: Tensor, state: State, lengths: Tensor | None, engine: str,
        return_traces: bool, start_step: int, tokens: Tensor | None = None,
    ) -> tuple[Tensor, State, list[Traces]]:
        steps, batch = (tokens if tokens is not None else inputs).shape[:2]
        finals: list[State] = []
        all_traces: list[Traces] = []
        layer_input = inputs
        lower_cells: list[Tensor | None] = [None] * self.num_directions
        for layer, cell_math in enumerate(self.layer_maths):
            next_reads_cells = (layer + 1 < self.num_layers
                                and self.layer_maths[layer + 1].uses_lower_cell)
            want_traces = return_traces or next_reads_cells
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                params = {name: self._dropped(name, value)
                          for name, value in self.cell_parameters(layer, direction).items()}
                start = tuple(s[index] for s in state)
                sequence, lower = layer_input, lower_cells[direction]
                layer_tokens = tokens if layer == 0 else None
                if layer_tokens is not None:  # the table holds project_input: already done
                    del params["weight_ih"]
                    params.pop("bias_ih", None)
                    if engine != "fused":
                        sequence, layer_tokens = F.embedding(layer_tokens, sequence), None
                if direction:
                    sequence = reverse_padded(sequence, lengths)
                    lower = None if lower is None else reverse_padded(lower, lengths)
                zoneout = self._zoneout(steps, batch, start[0])
                if engine == "scan":
                    output, final, traces = run_scan(cell_math, params, sequence, start, lengths,
                                                     want_traces)
                elif engine == "fused":
                    output, final, traces = run_fused(cell_math, params, sequence, start, lengths,
                                                      lower, want_traces, start_step,
                                                      layer_tokens, zoneout)
                else:
                    output, final, traces = run_reference(cell_math, params, sequence, start,
                                                          lengths, lower, want_traces, start_step,
                                                          zoneout)
                if direction:
                    output = reverse_padded(output, lengths)
                    if traces is not None:
                        traces = {k: reverse_padded(v, lengths) for k, v in traces.items()}
                outputs.append(output)
                finals.append(final)
                if traces is not None:
                    all_traces.append(traces)
                    lower_cells[direction] = traces.get("c")
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer + 1 < self.num_layers:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        final_state = tuple(torch.stack([f[k] for f in finals]) for k in range(len(finals[0])))
        return layer_input, final_state, (all_traces if return_traces else [])


def _repack(outputs: Tensor, packed: PackedSequence, lengths: Tensor | None) -> PackedSequence:
    """Pack padded (T, B, F) outputs in the batch order of the input ``packed``."""
    if packed.sorted_indices is None:
        order = torch.arange(outputs.shape[1], device=outputs.device)
    else:
        order = packed.sorted_indices.to(outputs.device)
    if lengths is None:
        lengths = torch.full((outputs.shape[1],), outputs.shape[0], dtype=torch.int64)
    repacked = pack_padded_sequence(outputs.index_select(1, order),
                                    lengths.index_select(0, order.cpu()), enforce_sorted=True)
    return PackedSequence(repacked.data, repacked.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)

"""The sequence layer shared by every cell: stacking, both directions, ragged batches, engines.

:class:`RecurrentLayer` keeps the contract of ``torch.nn.RNN/LSTM/GRU``: the same constructor
arguments, parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), input and output shapes,
so a torch state_dict loads into it and back. A cell family only says which :class:`CellMath` each
layer of the stack uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit.cells.base import CellMath, Params, State, Traces
from rnnkit.checks import check_probability, check_size, check_state
from rnnkit.engine.fused import run_fused
from rnnkit.engine.native import run_native
from rnnkit.engine.onnx_ops import run_onnx_operators
from rnnkit.engine.reference import Zoneout, run_loop, run_reference
from rnnkit.engine.scan import run_scan
from rnnkit.engine.select import check_engine, choose_engine
from rnnkit.layers.inputs import SequenceInput, read_sequence, restore_layout, reverse_padded
from rnnkit.layers.regularisation import RECURRENT_WEIGHTS, drop_connect, zoneout_keep


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
        if engine is not None:
            check_engine(engine)
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
            self.engine_for(None)  # reject an impossible engine now

    def layer_math(self, layer: int) -> CellMath:
        """The cell of layer ``layer`` (0-based) of the stack."""
        raise NotImplementedError

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

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
        if value and not any(name in RECURRENT_WEIGHTS for name in
                             self.layer_maths[0].parameter_shapes(1, self.bias)):
            raise ValueError(f"weight_dropout: {type(self).__name__} has no recurrent weights "
                             f"to drop, so expected 0, got {value}")
        self._weight_dropout = value

    @property
    def zoneout_hidden(self) -> float:
        """Zoneout on the hidden state (Krueger et al. 2017), 0 = off: in training, each unit
        of each sequence keeps its previous value h_{t-1} at each step with this probability
        (else it takes the new one); in evaluation, h_t = z h_{t-1} + (1 - z) h~_t, the
        expectation, where h~_t is what the cell computes. Not with ``proj_size``.
        Settable."""
        return self._zoneout_hidden

    @zoneout_hidden.setter
    def zoneout_hidden(self, value: float) -> None:
        value = check_probability("zoneout_hidden", value, below_one=True)
        if value and getattr(self.layer_maths[0], "proj_size", 0):
            raise ValueError(f"zoneout_hidden: not with proj_size (the projected h_t is not "
                             f"the cell's own state), so expected 0, got {value}")
        self._zoneout_hidden = value

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
        self._zoneout_cell = value

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
        if torch.compiler.is_exporting():
            problem = self.export_problem(packed=isinstance(input, PackedSequence))
            if problem:
                raise ValueError(f"{type(self).__name__}: {problem}")
        sequence = read_sequence(input, lengths, tokens, weight=self.weight_ih_l0,
                                 input_size=self.input_size, batch_first=self.batch_first,
                                 bidirectional=self.bidirectional)
        state = self._initial_state(hx, sequence.batch, sequence.batched, sequence.inputs)
        check_size("start_step", start_step, minimum=0)
        engine = self.engine_for(sequence.inputs, return_traces=return_traces,
                                 tokens=tokens is not None)
        if engine == "native":
            outputs, final = run_native(
                self.layer_maths[0].native_mode, self._flat_weights(), sequence.inputs, state,
                sequence.lengths, has_biases=self.bias, num_layers=self.num_layers,
                dropout=self.dropout, training=self.training, bidirectional=self.bidirectional,
            )
            traces = None
        elif engine == "onnx":
            outputs, final = run_onnx_operators(
                self.layer_maths,
                [[self.cell_parameters(layer, direction)
                  for direction in range(self.num_directions)]
                 for layer in range(self.num_layers)],
                sequence.inputs, state, sequence.lengths)
            traces = None
        else:
            outputs, final, traces = self._run_stack(sequence, state, engine, return_traces,
                                                     start_step)
        output, final, traces = restore_layout(sequence, outputs, final, traces,
                                               self.batch_first)
        result_state = final[0] if len(final) == 1 else final
        if not return_traces:
            return output, result_state
        return output, result_state, traces

    def export_problem(self, packed: bool = False) -> str | None:
        """Why this layer (given a ``packed`` sequence or not) has no ``torch.export`` path
        with a dynamic batch and length, naming the option; ``None`` if it has one."""
        if self.training:
            for option in ("dropout", "weight_dropout", "zoneout_hidden", "zoneout_cell"):
                value = getattr(self, option)
                if value:
                    return (f"{option}={value} in training mode draws random masks per call "
                            f"and has no export path; call model.eval() first")
        if self.engine in ("native", "reference", "scan"):
            return (f"engine={self.engine!r} has no export path with a dynamic sequence length "
                    f"(it unrolls the steps or runs torch's kernels); use engine=None ('auto')")
        if packed:
            return ("a PackedSequence input has no export path; pass the padded tensor and "
                    "lengths=")
        return None

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

    def project_input(self, x: Tensor) -> Tensor:
        """The first layer's input projection ``W_ih x + b_ih`` of ``x`` (..., input_size) ->
        (..., rows of weight_ih_l0): the rows of the table that ``forward(..., tokens=)`` takes."""
        return self.layer_maths[0].project_input(self.cell_parameters(0), x)

    def engine_for(self, inputs: Tensor | None, *, return_traces: bool = False,
                   tokens: bool = False) -> str:
        """The engine a call with tensors like ``inputs`` (their device and dtype, and the
        autocast state), with traces or not and with ``tokens`` or not, runs on: "native",
        "fused", "scan" or "reference" (see :func:`rnnkit.engine.select.choose_engine`).
        With ``inputs=None``, what the cells allow on any tensors."""
        return choose_engine(self.layer_maths, self.engine, inputs, traces=return_traces,
                             tokens=tokens,
                             zoneout=bool(self._zoneout_hidden or self._zoneout_cell),
                             layer_name=type(self).__name__)

    def reads_token_table(self, table: Tensor) -> bool:
        """Whether ``forward(table, tokens=...)`` would read the rows of ``table`` on the fused
        kernels, rather than gather a sequence of them first."""
        try:
            return self.engine_for(table, tokens=True) == "fused"
        except ValueError:  # an engine that takes no token inputs was asked for
            return False

    def _flat_weights(self) -> list[Tensor]:
        weights = []
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        if getattr(self.layer_maths[0], "proj_size", 0):
            names.append("weight_hr")
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                suffix = self._suffix(layer, direction)
                weights.extend(self._step_weight(name, getattr(self, name + suffix))
                               for name in names)
        return weights

    def _step_weight(self, name: str, weight: Tensor) -> Tensor:
        """``weight`` as a step uses it (with DropConnect on the recurrent weights)."""
        return drop_connect(name, weight, self._weight_dropout, self.training)

    def _zoneout(self, sequence: SequenceInput, like: Tensor) -> Zoneout | None:
        """The zoneout keep weights of one layer and direction for this call, or ``None``."""
        return zoneout_keep((self._zoneout_hidden, self._zoneout_cell),
                            self.layer_maths[0].state_sizes(), sequence.steps, sequence.batch,
                            like, self.training)

    def _run_stack(
        self, sequence: SequenceInput, state: State, engine: str, return_traces: bool,
        start_step: int,
    ) -> tuple[Tensor, State, list[Traces]]:
        lengths = sequence.lengths
        finals: list[State] = []
        all_traces: list[Traces] = []
        layer_input = sequence.inputs
        lower_cells: list[Tensor | None] = [None] * self.num_directions
        for layer, cell_math in enumerate(self.layer_maths):
            next_reads_cells = (layer + 1 < self.num_layers
                                and self.layer_maths[layer + 1].uses_lower_cell)
            want_traces = return_traces or next_reads_cells
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                params = {name: self._step_weight(name, value)
                          for name, value in self.cell_parameters(layer, direction).items()}
                start = tuple(s[index] for s in state)
                inputs, lower = layer_input, lower_cells[direction]
                tokens = sequence.tokens if layer == 0 else None
                if tokens is not None:  # the table holds project_input: already done
                    del params["weight_ih"]
                    params.pop("bias_ih", None)
                    if engine != "fused":
                        inputs, tokens = F.embedding(tokens, inputs), None
                if direction:
                    inputs = reverse_padded(inputs, lengths)
                    lower = None if lower is None else reverse_padded(lower, lengths)
                zoneout = self._zoneout(sequence, start[0])
                if engine == "scan":
                    output, final, traces = run_scan(cell_math, params, inputs, start, lengths,
                                                     want_traces)
                elif engine == "fused":
                    output, final, traces = run_fused(cell_math, params, inputs, start, lengths,
                                                      lower, want_traces, start_step, tokens,
                                                      zoneout)
                else:
                    run = run_loop if engine == "loop" else run_reference
                    output, final, traces = run(cell_math, params, inputs, start, lengths, lower,
                                                want_traces, start_step, zoneout)
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

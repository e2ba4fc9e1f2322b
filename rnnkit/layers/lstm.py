"""The LSTM sequence layer: stacks of :mod:`rnnkit.cells.lstm` over time."""

from __future__ import annotations

import torch

from rnnkit.cells.base import CellMath
from rnnkit.cells.lstm import SWITCHES_EQUATIONS, LSTMMath
from rnnkit.checks import check_size
from rnnkit.layers.base import RecurrentLayer


class LSTM(RecurrentLayer):
    __doc__ = r"""A multi-layer LSTM, a drop-in for ``torch.nn.LSTM``, with Greff et al.'s variants.
    """ + SWITCHES_EQUATIONS + r"""
    Arguments: ``input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None`` exactly as torch
    (``dropout`` applies to the outputs of every layer but the last, in training), then the
    switches above, ``learn_initial_state=False`` (learned ``initial_h``/``initial_c`` of shape
    (num_layers * D, size) used when ``hx`` is omitted), ``weight_dropout=0.0`` (DropConnect in
    training: each call multiplies every ``weight_hh`` and ``weight_gr`` by one mask of
    Bernoulli(1 - p) / (1 - p) entries; torch's kernels still run, on the dropped weights),
    ``zoneout_hidden=0.0`` and ``zoneout_cell=0.0`` (zoneout, Krueger et al. 2017: in training
    each unit keeps its previous state with that probability at each step,
    :math:`c_t = k \odot c_{t-1} + (1 - k) \odot \tilde{c}_t` and
    :math:`h_t = k' \odot h_{t-1} + (1 - k') \odot o_t \odot \tanh(\tilde{c}_t)` with 0/1 masks
    :math:`k, k'` and :math:`\tilde{c}_t = f_t \odot c_{t-1} + i_t \odot g_t`; in evaluation
    :math:`k` = ``zoneout_cell`` and :math:`k'` = ``zoneout_hidden``, the expectation; the fused
    kernels run it, torch's do not; ``zoneout_hidden`` not with ``proj_size``) and ``engine``
    (``"auto"``: the fastest engine that runs this configuration; ``"native"``, ``"fused"``,
    ``"scan"``, ``"reference"``: that engine, or a ValueError saying why it cannot run; the
    environment variable ``RNNKIT_ENGINE`` or :func:`rnnkit.set_default_engine` sets the
    default; see :func:`rnnkit.engine.select.choose_engine`).

    Inputs: ``input`` (T, B, input_size), (B, T, input_size) with ``batch_first``, unbatched
    (T, input_size), or a ``PackedSequence``; ``hx = (h_0, c_0)`` of shapes (num_layers * D, B, P)
    and (num_layers * D, B, H) (D = 2 if bidirectional, P = proj_size or H), zeros if omitted;
    keyword ``lengths`` (B,) ints: sequence b occupies its first ``lengths[b]`` steps;
    ``return_traces``.

    Outputs: ``output`` (T, B, D*P) (batch-first or unbatched like the input; a PackedSequence for
    one), zeros after each sequence's end; ``(h_n, c_n)`` taken at each sequence's last step (the
    reverse direction starts at each sequence's own end). With ``return_traces=True`` a third
    value: for each layer and direction in ``h_n`` order, a dict of per-step tensors
    ``i, f, g, o, c, h`` laid out like ``output`` (gates a switch removes are absent).

    Variables: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``,
    ``weight_hr_l{k}`` as torch (suffix ``_reverse`` for the backward direction), plus
    ``weight_c{i,f,o}_l{k}`` and ``weight_gr_l{k}`` for the switches; see :class:`LSTMCell`.

    Example::

        >>> lstm = rnnkit.LSTM(10, 20, num_layers=2, peepholes=True, coupled=True)
        >>> output, (h_n, c_n) = lstm(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
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
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        learn_initial_state: bool = False,
        weight_dropout: float = 0.0,
        zoneout_hidden: float = 0.0,
        zoneout_cell: float = 0.0,
        engine: str | None = None,
        **switches,
    ) -> None:
        check_size("hidden_size", hidden_size)
        self._math = LSTMMath(hidden_size, proj_size=proj_size, **switches)
        self.proj_size = proj_size
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, learn_initial_state=learn_initial_state,
                         weight_dropout=weight_dropout, zoneout_hidden=zoneout_hidden,
                         zoneout_cell=zoneout_cell, engine=engine)

    def layer_math(self, layer: int) -> CellMath:
        return self._math

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + (f", proj_size={self.proj_size}" if self.proj_size else "")

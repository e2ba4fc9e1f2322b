"""Many-to-many, unaligned: an encoder-decoder over any rnnkit layer, and its error rate.

The encoder reads the source tokens (both ways if bidirectional); a linear bridge turns its
final state -- every tensor of it, so LSTM (h, c) pairs and one-tensor states alike -- into the
decoder's initial state; the decoder reads BOS and the target tokens one step behind and scores
the next target token at each step, optionally attending to the encoder's outputs (Luong et
al. 2015). Token ids follow :class:`rnnkit.data.SymbolVocab`: PAD = 0, BOS = 1, EOS = 2.
:mod:`rnnkit.models.metrics` scores decoded sequences (e.g. the phoneme error rate of
grapheme-to-phoneme conversion).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.catalog import build_layer
from rnnkit.data.cmudict import BOS, EOS, PAD
from rnnkit.models.base import ModelOutput, evaluation_mode, valid_steps
from rnnkit.models.classifier import layer_output_size, layer_state_sizes
from rnnkit.models.state import State, map_state, state_from_tensors, state_tensors

ATTENTIONS = ("dot", "general")


class Seq2Seq(nn.Module):
    """Encoder-decoder: source ids (B, S) and lengths (B,), target input (B, T) -> logits (B, T, V).

    ``forward(source, source_lengths, target_input, targets) -> ModelOutput(logits, None,
    loss)`` (:class:`~rnnkit.models.ModelOutput`). ``target_input`` is BOS followed by the
    target tokens (teacher forcing, as :func:`rnnkit.data.make_g2p_batch` builds it); the
    logits at step t score target token t (the last one being EOS). The loss, given the
    ``targets`` (B, T) (the target tokens, then EOS, padded with PAD), is the mean
    cross-entropy over the non-PAD targets.

    Both layers are ``cell`` with ``hidden_size`` and ``num_layers``; only the encoder can be
    ``bidirectional``. ``attention`` is None, ``"dot"`` (score h . m, which needs encoder
    outputs the decoder's size, so a unidirectional encoder) or ``"general"`` (score h W m);
    padded source steps get no attention. With attention the decoder output h and the context
    c give ``tanh(W_c [c; h])`` before the output projection. Dropout applies to embeddings,
    between stacked layers and before the projection. ``switches`` go to
    :func:`rnnkit.build_layer` for both layers.

    For translation (joint subword vocabularies): ``decoder_size`` gives the decoder its own
    width (default ``hidden_size``; the bridge maps the encoder's state to it);
    ``tie_embeddings`` shares one matrix between the source and target embeddings and the
    output projection (Press & Wolf 2017; needs equal vocabularies and attention, whose
    combined output then has ``embedding_size`` features); ``label_smoothing`` spreads that
    share of each target's probability evenly over the vocabulary in the training loss.

    Decoding (:meth:`greedy_decode`, :meth:`beam_decode`) runs the decoder one step at a time,
    carrying its state; PAD and BOS are never emitted.

    Example::

        >>> from rnnkit.models.seq2seq import Seq2Seq
        >>> model = Seq2Seq(30, 40, cell="gru", hidden_size=32, bidirectional=True,
        ...                 attention="general")
        >>> source, lengths = torch.randint(3, 30, (2, 7)), torch.tensor([7, 4])
        >>> model(source, lengths, torch.randint(3, 40, (2, 5))).outputs.shape
        torch.Size([2, 5, 40])
        >>> len(model.beam_decode(source, lengths, beam_size=3, max_length=6))
        2
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        cell: str = "lstm",
        embedding_size: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        attention: str | None = "general",
        decoder_size: int | None = None,
        tie_embeddings: bool = False,
        label_smoothing: float = 0.0,
        **switches: Any,
    ) -> None:
        """Build embeddings, encoder, bridge, decoder, attention (if any) and output projection."""
        super().__init__()
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"attention: expected None or one of {ATTENTIONS}, got {attention!r}")
        if tie_embeddings and (source_vocab_size != target_vocab_size or attention is None):
            raise ValueError("tie_embeddings: needs one vocabulary for source and target "
                             f"(got {source_vocab_size} and {target_vocab_size}) and attention "
                             f"(got {attention!r})")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: expected a value in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        layer_dropout = dropout if num_layers > 1 else 0.0
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_size, padding_idx=PAD)
        self.source_embedding = (self.target_embedding if tie_embeddings else
                                 nn.Embedding(source_vocab_size, embedding_size, padding_idx=PAD))
        self.encoder = build_layer(cell, embedding_size, hidden_size, num_layers, batch_first=True,
                                   bidirectional=bidirectional, dropout=layer_dropout, **switches)
        self.decoder = build_layer(cell, embedding_size, decoder_size or hidden_size, num_layers,
                                   batch_first=True, dropout=layer_dropout, **switches)
        directions = self.encoder.num_directions
        self.bridge = nn.ModuleList(
            nn.Linear(directions * encoder_size, decoder_size) for encoder_size, decoder_size
            in zip(layer_state_sizes(self.encoder), layer_state_sizes(self.decoder))
        )
        memory_size, decoder_size = layer_output_size(self.encoder), layer_output_size(self.decoder)
        if attention == "dot" and memory_size != decoder_size:
            raise ValueError(f"attention='dot': encoder outputs of size {memory_size} cannot be "
                             f"scored against decoder outputs of size {decoder_size}; use "
                             "attention='general' or a unidirectional encoder")
        self.attention = attention
        if attention == "general":
            self.attention_weight = nn.Linear(decoder_size, memory_size, bias=False)
        combined_size = embedding_size if tie_embeddings else decoder_size
        if attention is not None:
            self.combine = nn.Linear(memory_size + decoder_size, combined_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(combined_size, target_vocab_size)
        if tie_embeddings:
            self.head.weight = self.target_embedding.weight

    def forward(
        self, source: Tensor, source_lengths: Tensor | Sequence[int], target_input: Tensor,
        targets: Tensor | None = None,
    ) -> ModelOutput:
        """Teacher-forced logits (B, T, V) for each step of ``target_input`` (B, T), and
        their loss against ``targets`` (B, T) if given."""
        memory, mask, state = self.encode(source, source_lengths)
        logits, _ = self.decode(target_input, state, memory, mask)
        if targets is None:
            return ModelOutput(logits)
        scores = logits.float()  # float32 softmax, also under autocast
        loss = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1),
                               ignore_index=PAD, label_smoothing=self.label_smoothing)
        return ModelOutput(logits, None, loss)

    def encode(
        self, source: Tensor, source_lengths: Tensor | Sequence[int]
    ) -> tuple[Tensor, Tensor, State]:
        """Read the source: encoder outputs (B, S, M), mask (B, S) True at real steps, and the
        decoder's initial state."""
        memory, final = self.encoder(self.dropout(self.source_embedding(source)),
                                     lengths=source_lengths)
        mask = valid_steps(source_lengths, source.shape[1], source.device)
        layers, directions = self.encoder.num_layers, self.encoder.num_directions
        bridged = []
        for part, linear in zip(state_tensors(final), self.bridge):
            # (L*D, B, S) -> (L, B, D*S): each layer's directions side by side, then mapped.
            per_layer = part.reshape(layers, directions, *part.shape[1:]).transpose(1, 2)
            bridged.append(linear(per_layer.reshape(layers, part.shape[1], -1)))
        return memory, mask, state_from_tensors(bridged, isinstance(final, tuple))

    def decode(
        self, target_input: Tensor, state: State, memory: Tensor, mask: Tensor,
        start_step: int = 0,
    ) -> tuple[Tensor, State]:
        """Run the decoder over ``target_input`` (B, T) from ``state``: logits (B, T, V), state.

        ``start_step`` is the number of target steps already decoded (the Clockwork RNN's
        clock depends on it).
        """
        embedded = self.dropout(self.target_embedding(target_input))
        # Under autocast the bridge gives a lower-precision state; the layer wants the inputs'.
        state = map_state(state, lambda part: part.to(embedded.dtype))
        outputs, state = self.decoder(embedded, state, start_step=start_step)
        if self.attention is not None:
            outputs, _ = self.attend(outputs, memory, mask)
        return self.head(self.dropout(outputs)), state

    def attend(self, outputs: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder outputs (B, T, H) with attention over ``memory`` (B, S, M): the combined
        outputs ``tanh(W_c [c; h])`` and the attention weights (B, T, S)."""
        query = outputs if self.attention == "dot" else self.attention_weight(outputs)
        scores = (query @ memory.transpose(1, 2)).masked_fill(~mask.unsqueeze(1), -torch.inf)
        weights = scores.softmax(dim=-1)
        combined = torch.tanh(self.combine(torch.cat([weights @ memory, outputs], dim=-1)))
        return combined, weights

    @torch.no_grad()
    def attention_map(self, source: Tensor, source_lengths: Tensor | Sequence[int],
                      target_input: Tensor) -> Tensor:
        """Attention weights (B, T, S) of the teacher-forced decoder: row t is where the
        decoder looks while scoring target token t. In eval mode; needs attention."""
        if self.attention is None:
            raise ValueError("attention_map: this model was built with attention=None")
        with evaluation_mode(self):
            memory, mask, state = self.encode(source, source_lengths)
            embedded = self.target_embedding(target_input)
            state = map_state(state, lambda part: part.to(embedded.dtype))
            outputs, _ = self.decoder(embedded, state)
            return self.attend(outputs, memory, mask)[1]

    def output_log_probs(self, logits: Tensor) -> Tensor:
        """Log-probabilities of the next token as decoding sees them: PAD and BOS, never an
        output, get probability 0. logits (..., V) -> (..., V)."""
        never = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        never[[PAD, BOS]] = True
        return logits.masked_fill(never, -torch.inf).log_softmax(dim=-1)

    @torch.no_grad()
    def sequence_log_probs(
        self, source: Tensor, source_lengths: Tensor | Sequence[int],
        sequences: Sequence[Sequence[int]],
    ) -> Tensor:
        """Log-probability (B,) that decoding emits exactly ``sequences[b]`` after BOS.

        Append EOS to a sequence to score it as finished. In eval mode, as decoding is.
        """
        lengths = torch.tensor([len(tokens) for tokens in sequences], device=source.device)
        targets = torch.full((len(sequences), max(1, int(lengths.max()))), PAD,
                             dtype=torch.long, device=source.device)
        for row, tokens in enumerate(sequences):
            targets[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        target_input = torch.cat([torch.full_like(targets[:, :1], BOS), targets[:, :-1]], dim=1)
        with evaluation_mode(self):
            logits = self(source, source_lengths, target_input).outputs
        chosen = self.output_log_probs(logits).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        valid = valid_steps(lengths, targets.shape[1], source.device)
        return chosen.masked_fill(~valid, 0.0).sum(dim=1)

    def greedy_decode(
        self, source: Tensor, source_lengths: Tensor | Sequence[int], max_length: int
    ) -> list[list[int]]:
        """The most likely token at each step, for each source: B lists of ids, EOS excluded.

        A sequence stops at EOS or after ``max_length`` tokens. In eval mode (see
        :func:`~rnnkit.models.base.evaluation_mode`).
        """
        if max_length < 1:
            raise ValueError(f"max_length: expected >= 1, got {max_length}")
        with evaluation_mode(self):
            memory, mask, state = self.encode(source, source_lengths)
            tokens = torch.full((source.shape[0], 1), BOS, dtype=torch.long,
                                device=source.device)
            ended = torch.zeros(source.shape[0], dtype=torch.bool, device=source.device)
            emitted = []
            for step in range(max_length):
                logits, state = self.decode(tokens, state, memory, mask, start_step=step)
                tokens = self.output_log_probs(logits[:, -1]).argmax(dim=-1, keepdim=True)
                emitted.append(tokens)
                ended |= tokens[:, 0] == EOS
                if bool(ended.all()):
                    break
        rows = torch.cat(emitted, dim=1).tolist()
        return [row[: row.index(EOS)] if EOS in row else row for row in rows]

    def beam_decode(
        self,
        source: Tensor,
        source_lengths: Tensor | Sequence[int],
        beam_size: int = 4,
        max_length: int = 50,
        length_penalty: float = 0.0,
    ) -> list[list[int]]:
        """The best sequence found by beam search, for each source: B lists of ids, EOS excluded.

        Each source keeps the ``beam_size`` best unfinished hypotheses; a hypothesis ends when
        EOS is among the ``beam_size`` best extensions, or unfinished after ``max_length``
        tokens. Hypotheses are ranked by log p(y) / lp(n), with n the tokens of y counting EOS
        and lp(n) = ((5 + n) / 6) ** length_penalty (Wu et al. 2016): 0 ranks by probability
        alone, > 0 favours longer outputs. A source's search stops once no unfinished
        hypothesis can outrank its best finished one, so the answer is what searching on to
        ``max_length`` would return. ``beam_size=1`` is greedy decoding.
        """
        if beam_size < 1:
            raise ValueError(f"beam_size: expected >= 1, got {beam_size}")
        if max_length < 1:
            raise ValueError(f"max_length: expected >= 1, got {max_length}")
        with evaluation_mode(self):
            return self._beam_search(source, source_lengths, beam_size, max_length,
                                     length_penalty)

    def _beam_search(self, source: Tensor, source_lengths: Tensor | Sequence[int],
                     beam_size: int, max_length: int, length_penalty: float
                     ) -> list[list[int]]:
        """:meth:`beam_decode` with checked arguments, the model already in eval mode."""

        def penalty(length: int) -> float:
            return ((5 + length) / 6) ** length_penalty

        device, batch, beams = source.device, source.shape[0], beam_size
        memory, mask, state = self.encode(source, source_lengths)
        memory = memory.repeat_interleave(beams, dim=0)
        mask = mask.repeat_interleave(beams, dim=0)
        state = map_state(state, lambda part: part.repeat_interleave(beams, dim=1))
        # All beams start as the same BOS; only the first may expand, or each candidate would
        # enter the beam K times.
        scores = torch.full((batch, beams), -torch.inf, device=device)
        scores[:, 0] = 0.0
        tokens = torch.full((batch * beams, 1), BOS, dtype=torch.long, device=device)
        history = torch.empty((batch, beams, 0), dtype=torch.long, device=device)
        best: list[tuple[float, list[int]]] = [(-torch.inf, [])] * batch
        done = [False] * batch
        for step in range(max_length):
            logits, state = self.decode(tokens, state, memory, mask, start_step=step)
            log_probs = self.output_log_probs(logits[:, -1]).view(batch, beams, -1)
            vocab = log_probs.shape[-1]
            totals = (scores.unsqueeze(-1) + log_probs).view(batch, -1)
            # 2K candidates always leave K that do not end, even if every beam's best is EOS.
            top_scores, top_index = totals.topk(2 * beams, dim=1)
            next_scores = [[-torch.inf] * beams for _ in range(batch)]
            origins = [[0] * beams for _ in range(batch)]
            next_tokens = [[PAD] * beams for _ in range(batch)]
            # Unfinished scores only fall, and lp over the lengths still possible is at most
            # this, so no unfinished hypothesis can end above (best score) / bound_penalty.
            bound_penalty = max(penalty(step + 1), penalty(max_length + 1))
            for row, (row_scores, row_index) in enumerate(zip(top_scores.tolist(),
                                                              top_index.tolist())):
                if done[row]:
                    continue
                kept = 0
                for rank, (score, index) in enumerate(zip(row_scores, row_index)):
                    beam, token = divmod(index, vocab)
                    if token == EOS:
                        # Only an EOS among the K best ends a hypothesis, so K = 1 is greedy.
                        ranked = score / penalty(step + 1)
                        if rank < beams and ranked > best[row][0]:
                            best[row] = (ranked, history[row, beam].tolist())
                    elif kept < beams:
                        next_scores[row][kept] = score
                        origins[row][kept] = beam
                        next_tokens[row][kept] = token
                        kept += 1
                done[row] = best[row][0] >= max(next_scores[row]) / bound_penalty
            scores = torch.tensor(next_scores, device=device)
            chosen = torch.tensor(next_tokens, device=device)
            flat = (torch.arange(batch, device=device).unsqueeze(1) * beams
                    + torch.tensor(origins, device=device)).view(-1)
            history = torch.cat([history.view(batch * beams, -1)[flat].view(batch, beams, -1),
                                 chosen.unsqueeze(-1)], dim=-1)
            state = map_state(state, partial(torch.index_select, dim=1, index=flat))
            tokens = chosen.view(-1, 1)
            if all(done):
                break
        else:
            for row in range(batch):
                if done[row]:
                    continue
                for beam, score in enumerate(scores[row].tolist()):
                    if score / penalty(max_length) > best[row][0]:
                        best[row] = (score / penalty(max_length), history[row, beam].tolist())
        return [tokens for _, tokens in best]

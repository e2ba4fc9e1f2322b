"""Networks that put a task's input and output around any rnnkit recurrent layer, one I/O
shape per file.

Every model's ``forward`` takes its inputs and optional ``targets`` and returns a
:class:`ModelOutput` ``(outputs, state, loss)``: the state to continue from (None for models
whose examples are independent) and, given targets, the training loss with every term the
model adds to it (see :mod:`~rnnkit.models.base`).

* :mod:`~rnnkit.models.language_model` -- many-to-many aligned next-token prediction, and
  one-to-many sampling.
* :mod:`~rnnkit.models.classifier` -- many-to-one: a sequence in, class scores out.
* :mod:`~rnnkit.models.forecaster` -- a multi-step forecast from a window; an output per step.
* :mod:`~rnnkit.models.generator` -- one-to-many: a condition in, a sequence out.
* :mod:`~rnnkit.models.seq2seq` -- many-to-many unaligned: an encoder-decoder.
* :mod:`~rnnkit.models.ctc` -- many-to-many unaligned by CTC: a line recognizer.
* :mod:`~rnnkit.models.metrics` -- edit distance and error rates of decoded sequences.
* :mod:`~rnnkit.models.base` -- what the models share: their output, loss and evaluation mode.
* :mod:`~rnnkit.models.state` -- recurrent state as a tensor or a tuple of tensors.
"""

from rnnkit.models.base import ModelOutput, evaluation_mode
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.forecaster import Forecaster, SequenceTagger
from rnnkit.models.generator import ConditionalGenerator
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.state import State, detach_state

__all__ = [
    "ConditionalGenerator", "Forecaster", "LanguageModel", "LanguageModelConfig", "ModelOutput",
    "Seq2Seq", "SequenceClassifier", "SequenceTagger", "State", "detach_state",
    "evaluation_mode",
]

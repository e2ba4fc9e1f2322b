"""Networks that put a task's input and output around any rnnkit recurrent layer, one I/O
shape per file.

* :mod:`~rnnkit.models.language_model` -- many-to-many aligned next-token prediction, and
  one-to-many sampling.
* :mod:`~rnnkit.models.classifier` -- many-to-one: a sequence in, class scores out.
* :mod:`~rnnkit.models.forecaster` -- a multi-step forecast from a window; an output per step.
* :mod:`~rnnkit.models.generator` -- one-to-many: a condition in, a sequence out.
* :mod:`~rnnkit.models.seq2seq` -- many-to-many unaligned: an encoder-decoder.
* :mod:`~rnnkit.models.state` -- recurrent state as a tensor or a tuple of tensors.
"""

from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.forecaster import Forecaster, SequenceTagger
from rnnkit.models.generator import ConditionalGenerator
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.state import State, detach_state

__all__ = [
    "ConditionalGenerator", "Forecaster", "LanguageModel", "LanguageModelConfig", "Seq2Seq",
    "SequenceClassifier", "SequenceTagger", "State", "detach_state",
]

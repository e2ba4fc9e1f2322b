"""Networks that put a task's input and output around any rnnkit recurrent layer.

* :mod:`~rnnkit.models.language_model` -- next-token prediction and sampling.
* :mod:`~rnnkit.models.state` -- recurrent state as a tensor or a tuple of tensors.
"""

from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.state import State, detach_state

__all__ = ["LanguageModel", "LanguageModelConfig", "State", "detach_state"]

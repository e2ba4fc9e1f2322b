"""How many CPU threads a training run uses: one count, fixed before the first step.

A step's numbers can depend on the intra-op thread count: reductions and some kernels
(convolutions, matrix products of some shapes) split their work by thread and add the
partial results in a different order, so the classification and forecasting tasks' steps
differ in the last bits between 1 and 2 threads (the default language model's steps do not,
on a 2-core AVX2 CPU). A count that changed during a run would make two runs of the same
command and seed differ, and a resumed run differ from an uninterrupted one. So the count is
decided once, before the first step, and never changes: ``--threads N``, else (auto) the
count a resumed run recorded in its checkpoints, else torch's intra-op count in the process
(by default the physical cores; ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` set it).
Every checkpoint records it, so ``--resume`` (without ``--threads``) continues with it on any
machine.

On a machine whose cores other programs keep busy, fewer threads can train several times
faster (the threads meet at a barrier after every parallel operation and wait for one that
was descheduled): give ``--threads 1`` there, which is also the count to give to repeat a run
on a machine with another number of cores.
"""

from __future__ import annotations

import torch


def run_threads(requested: int | None, recorded: int | None = None) -> int:
    """Set and return the intra-op thread count of a run's steps: ``requested`` (``--threads``),
    else ``recorded`` (the count a resumed run's checkpoint holds), else torch's current count.
    """
    count = requested or recorded or torch.get_num_threads()
    torch.set_num_threads(count)
    return count

"""Data-parallel training: two torchrun processes take the same steps as one process."""

import csv
import os
import random
import subprocess
import sys

import pytest
import torch

from rnnkit.tasks import build_task, task_config
from rnnkit.training.distributed import Ranks
from rnnkit.training.trainer import train

WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()


def metrics(run_path) -> list[dict[str, str]]:
    with open(run_path / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    rng = random.Random(1)
    text = " ".join(rng.choice(WORDS) for _ in range(400))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    options = dict(data=str(corpus), embedding_size=8, hidden_size=16, batch_size=8, bptt=16,
                   steps=10, eval_every=5, warmup=2, time_limit=None, device="cpu",
                   threads=1, precision="fp32", dropout=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(task_config("lm", **options), tmp_path / "one", Ranks(0, 1, torch.device("cpu")),
              build_task)
    finally:
        torch.set_num_threads(threads)

    flags = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()
             if name != "time_limit"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "rnnkit", "train", *flags, "--time-limit", "0",
               "--out", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert len(one) == len(two) == 10
    for a, b in zip(one, two, strict=True):
        for column in ("loss", "grad_norm", "val_cross_entropy"):
            if a[column]:
                assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-5, abs=1e-6)
    assert done.stdout.count("finished 10 steps") == 1  # only rank 0 prints

"""ThreadTuner: keeps the thread count whose timed steps were fastest."""

import pytest
import torch

from rnnkit.training.threads import ThreadTuner


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def run_steps(tuner, seconds_by_threads, steps):
    used = []
    for _ in range(steps):
        tuner.before_step()
        used.append(torch.get_num_threads())
        tuner.after_step(seconds_by_threads[torch.get_num_threads()])
    return used


def test_auto_switches_to_one_thread_when_it_is_faster():
    tuner = ThreadTuner(None, torch.device("cpu"), every=4, trial=2)
    used = run_steps(tuner, {1: 0.1, 2: 0.9}, steps=15)
    # 2 steps on 2 threads, a 2-step trial of 1 thread (kept); after 4 steps a 1-step trial
    # of 2 threads, cut short as clearly slower; the next trial waits twice as long.
    assert used == [2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1]
    assert run_steps(tuner, {1: 0.1, 2: 0.9}, steps=3) == [1, 1, 2]


def test_auto_stays_on_all_cores_when_they_are_faster():
    tuner = ThreadTuner(None, torch.device("cpu"), every=4, trial=2)
    used = run_steps(tuner, {1: 0.5, 2: 0.3}, steps=16)
    assert used == [2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2]


def test_a_fixed_count_is_never_changed():
    tuner = ThreadTuner(1, torch.device("cpu"), every=1, trial=1)
    assert run_steps(tuner, {1: 0.5, 2: 0.1}, steps=6) == [1] * 6

"""Seconds from starting ``rnnkit train`` (the default language model, ``--threads 1``) to its
first logged training step, in a source tree given as the first argument (a fresh clone), with
the run directory the second. The process is then killed (SIGKILL). Run ``rnnkit build`` in the
same environment first to time the start without compiling; set ``TORCH_EXTENSIONS_DIR`` to an
empty folder to time it on a machine where nothing is built yet.

Usage: ``python benchmarks/first_run.py CLONE RUN_DIR``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    clone, out = Path(sys.argv[1]), Path(sys.argv[2])
    env = {**os.environ, "PYTHONPATH": str(clone)}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "rnnkit", "train", "--threads", "1",
                                "--out", str(out)], cwd=clone, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = out / "metrics.csv"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        if process.poll() is not None:
            sys.exit(f"rnnkit train ended before its first step:\n{process.stdout.read()}")
        time.sleep(0.2)
    print(f"first step logged after {time.monotonic() - started:.1f} s")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


if __name__ == "__main__":
    main()

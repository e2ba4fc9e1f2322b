"""The examples of docs/guide/export.md that run an exported file without rnnkit, run as they
stand in the page, and ``rnnkit export --format pt2`` of the tasks tests/test_export.py
exports as ONNX only (language model, forecaster, G2P).

Each example starts with ``run = "runs/RUN"``; the test puts a small trained run there,
executes the code block and compares what it prints with rnnkit's own output: the language
model's greedy text with the ``rnnkit sample`` command the page names, the G2P phonemes with
the greedy decoding ``rnnkit evaluate`` scores. So the page cannot drift from the files
``rnnkit export`` writes.
"""

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from rnnkit.models.state import state_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

PAGE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "export.md"
RUN_LINE = re.compile(r'^run = "runs/RUN"', re.MULTILINE)
TINY_RUN = ["--hidden-size", "8", "--batch-size", "4", "--steps", "2", "--warmup", "0",
            "--time-limit", "0", "--device", "cpu", "--threads", "1"]


def _cli(capsys, *argv) -> str:
    from rnnkit.cli import main

    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _example(marker: str) -> str:
    """The page's one Python block that runs a file in onnxruntime and contains ``marker``."""
    blocks = [block for block in re.findall(r"```python\n(.+?)```", PAGE.read_text(),
                                            flags=re.DOTALL)
              if "onnxruntime.InferenceSession" in block and marker in block]
    assert len(blocks) == 1, f"{PAGE.name}: {len(blocks)} onnxruntime examples with {marker!r}"
    return blocks[0]


def _run_example(code: str, run: Path) -> str:
    """What ``code`` prints with its ``run = "runs/RUN"`` line pointing at ``run``."""
    code, count = RUN_LINE.subn(f"run = {str(run)!r}", code)
    assert count == 1, 'the example must start from run = "runs/RUN"'
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "export_example"})  # noqa: S102
    return printed.getvalue()


def _restored_model(run: Path):
    from rnnkit.tasks import build_task
    from rnnkit.training.checkpoint import load_checkpoint
    from rnnkit.training.run_dir import RunDirectory

    directory = RunDirectory.open(run)
    checkpoint = load_checkpoint(directory.checkpoint_for_use())
    config = directory.read_config()
    task = build_task(config, torch.device("cpu"), checkpoint.info["task"])
    checkpoint.restore_model(task.model)
    return task.model.eval(), config


def test_language_model_example_prints_what_rnnkit_sample_prints(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 40)
    run = tmp_path / "lm"
    _cli(capsys, "train", "--data", corpus, "--embedding-size", "8", "--bptt", "8",
         "--layers", "2", *TINY_RUN, "--out", run)
    _cli(capsys, "export", run)
    printed = _run_example(_example('/model.onnx"'), run)
    command = re.search(r"`(rnnkit sample runs/RUN [^`]+)`", PAGE.read_text())
    assert command, "the page names the rnnkit sample command the example matches"
    argv = [str(run) if arg == "runs/RUN" else arg for arg in shlex.split(command[1])[1:]]
    assert printed == _cli(capsys, *argv)
    assert len(printed) == len("To be") + 40 + 1

    # the same run as .pt2 carries the state from call to call as the ONNX file does
    _cli(capsys, "export", run, "--format", "pt2")
    exported = torch.export.load(run / "model.pt2").module()
    model, _ = _restored_model(run)
    ids = torch.randint(0, model.embedding.num_embeddings, (3, 7))
    state = None
    for chunk in (ids[:, :5], ids[:, 5:6], ids[:, 6:]):
        with torch.no_grad():
            expected = model(chunk, state)
            zeros = [torch.zeros_like(part) for part in state_tensors(expected.state)]
            logits, *state = exported(chunk, *(state if state is not None else zeros))
        torch.testing.assert_close(logits, expected.outputs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(tuple(state), tuple(state_tensors(expected.state)),
                                   atol=1e-5, rtol=1e-5)


def test_g2p_example_spells_as_the_decoding_rnnkit_evaluate_scores(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from rnnkit.data import bundled_path
    from rnnkit.tasks.g2p import decode

    entries = [line for line in bundled_path("cmudict/cmudict.dict").read_text().splitlines()
               if line and not line.startswith(";;;")][:200]
    data = tmp_path / "dict.txt"
    data.write_text("\n".join(entries) + "\n")
    run = tmp_path / "g2p"
    _cli(capsys, "train", "--task", "seq2seq", "--data", data, *TINY_RUN,
         "--embedding-size", "8", "--eval-every", "2", "--out", run)
    _cli(capsys, "export", run)
    code = _example("model-encoder.onnx")
    word = re.search(r'^word = "(\w+)"$', code, flags=re.MULTILINE)[1]
    printed = _run_example(code, run)
    model, _ = _restored_model(run)
    from rnnkit.data.cmudict import SymbolVocab

    facts = json.loads((run / "model.json").read_text())
    graphemes = SymbolVocab.from_dict(facts["graphemes"])
    phonemes = SymbolVocab.from_dict(facts["phonemes"])
    (spelled,), _ = decode(model, [(word, [])], graphemes, phonemes)
    assert printed == f"{word} {' '.join(spelled)}\n"

    # the .pt2 encoder and decoder step decode as the ONNX files and rnnkit do
    _cli(capsys, "export", run, "--format", "pt2")
    encoder = torch.export.load(run / "model-encoder.pt2").module()
    decoder = torch.export.load(run / "model-decoder.pt2").module()
    source = graphemes.encode(word)[None]
    lengths = torch.tensor([source.shape[1]])
    with torch.no_grad():
        memory, *state = encoder(source, lengths)
        tokens, ids = torch.tensor([[1]]), []
        for _ in range(len(word) + 10):
            log_probs, *state = decoder(tokens, memory, lengths, *state)
            tokens = log_probs[:, -1:].argmax(-1)
            if tokens.item() == 2:
                break
            ids.append(tokens.item())
    assert phonemes.decode(ids) == spelled


def test_forecaster_exports_as_pt2_and_onnx_for_other_batch_sizes(tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    run = tmp_path / "forecast"
    _cli(capsys, "train", "--task", "forecast", *TINY_RUN, "--out", run)
    model, config = _restored_model(run)
    from rnnkit.tasks import build_task

    window, naive = build_task(config, torch.device("cpu")).batch_at(1).inputs
    window, naive = torch.cat([window, window.flip(0)])[:7], torch.cat([naive, naive])[:7]
    with torch.no_grad():
        expected = model((window, naive)).outputs
    assert expected.shape[0] == 7 != config.batch_size
    for file_format in ("pt2", "onnx"):
        out = _cli(capsys, "export", run, "--format", file_format)
        assert f"{run / f'model.{file_format}'} ({file_format}; inputs window, naive)" in out
        if file_format == "pt2":
            with torch.no_grad():
                got = torch.export.load(run / "model.pt2").module()(window, naive)[0]
        else:
            session = onnxruntime.InferenceSession(str(run / "model.onnx"))
            got = torch.from_numpy(session.run(None, {"window": window.numpy(),
                                                      "naive": naive.numpy()})[0])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

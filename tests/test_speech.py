"""Tests for audio in (rnnkit.data.audio), the bundled spoken digits (rnnkit.data.fsdd) and
the speech task: `rnnkit train --task speech`, recognize and inspect --ctc on recordings."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from rnnkit.cli import main
from rnnkit.data import DataError
from rnnkit.data.audio import (
    HOP,
    LOG_FLOOR,
    N_MELS,
    SAMPLE_RATE,
    change_speed,
    fast_length,
    frame_count,
    log_mel,
    normalise_features,
    pad_waveforms,
    read_audio,
    resample,
    smooth_cepstrally,
    stack_frames,
    trim_silence,
)
from rnnkit.data.fsdd import SPEAKERS, fsdd_split, load_fsdd, make_digit_strings
from rnnkit.inspection import inspect_ctc
from rnnkit.models.ctc import collapse_path
from rnnkit.models.spectrogram import SpectrogramClassifier
from rnnkit.tasks.speech import (
    BUCKET_STEPS,
    DEFAULT_OPTIONS,
    DigitClassifier,
    features_of,
    load_speech_model,
    load_speech_run,
    mix_batch,
    parse_data,
    recognize_recordings,
    similar_lengths,
    stream_digits,
)
from rnnkit.training.errors import RunError
from rnnkit.training.task import shuffled_rows

pytestmark = pytest.mark.usefixtures("one_thread")


def recording(digit: int, speaker: str = "theo", index: int = 0) -> np.ndarray:
    return next(r.samples for r in load_fsdd()
                if (r.digit, r.speaker, r.index) == (digit, speaker, index))


# --- reading and features -------------------------------------------------------------------


def test_any_rate_and_channel_count_is_read_as_mono_at_8_khz(tmp_path) -> None:
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1)
    soundfile.write(tmp_path / "tone.wav", stereo, 16000)
    soundfile.write(tmp_path / "tone.flac", tone, 16000)
    for name in ("tone.wav", "tone.flac"):
        samples = read_audio(tmp_path / name)
        assert samples.dtype == np.float32 and samples.shape == (SAMPLE_RATE,)
        spectrum = np.abs(np.fft.rfft(samples))
        assert np.argmax(spectrum) == 440  # 1-second signal: bin k is k Hz
        assert np.abs(samples).max() == pytest.approx(0.5, abs=0.02)


def test_resampling_keeps_a_tone_and_speed_change_shifts_it() -> None:
    tone = torch.sin(2 * math.pi * 300 * torch.arange(8000) / 8000)
    faster = resample(tone, 1.25, 1.0)
    assert faster.shape == (6400,)
    peak = int(torch.fft.rfft(faster).abs().argmax())  # bins of 8000/6400 Hz
    assert peak * 8000 / 6400 == pytest.approx(375, abs=2)
    for count, factor in ((8000, 1.25), (20011, 0.9), (3001, 1.1)):  # 20011 is prime
        wave = torch.sin(2 * math.pi * 300 * torch.arange(count) / 8000)
        sped = change_speed(wave, factor)
        used = count / sped.shape[0]
        assert used == pytest.approx(factor, rel=0.03)
        peak = int(torch.fft.rfft(sped).abs().argmax())
        assert peak * 8000 / sped.shape[0] == pytest.approx(300 * used, abs=8000 / sped.shape[0])


def test_fast_lengths_have_only_small_prime_factors() -> None:
    def smooth(n: int) -> bool:
        for prime in (2, 3, 5, 7):
            while n % prime == 0:
                n //= prime
        return n == 1

    for count in (1, 11, 20011, 3001, 4096):
        found = fast_length(count)
        assert found >= count and smooth(found)
        assert not any(smooth(n) for n in range(count, found))


def bad_recordings(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"RIFF this is not audio at all" * 20)
    soundfile.write(tmp_path / "short.wav", np.full(400, 0.1), 8000)
    soundfile.write(tmp_path / "silent.wav", np.zeros(4000), 8000)
    soundfile.write(tmp_path / "nothing.wav", np.zeros(0), 8000)
    return {
        "missing": (tmp_path / "absent.wav", "no such file"),
        "folder": (tmp_path, "is a folder"),
        "empty": (tmp_path / "empty.wav", "the file is empty"),
        "corrupt": (tmp_path / "junk.wav", "not a recording soundfile can read"),
        "short": (tmp_path / "short.wav", "too short"),
        "silent": (tmp_path / "silent.wav", "silent"),
        "no samples": (tmp_path / "nothing.wav", "holds no samples"),
    }


def test_bad_recordings_are_one_line_errors_naming_the_file(tmp_path) -> None:
    for case, (path, words) in bad_recordings(tmp_path).items():
        with pytest.raises(DataError, match=re.escape(words)) as caught:
            read_audio(path)
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, case


def test_log_mel_of_a_padded_batch_equals_each_recording_alone() -> None:
    waves = [recording(3), recording(8, "jackson")]
    batch, lengths = pad_waveforms(waves)
    features, frames = log_mel(batch, lengths)
    assert features.shape == (2, frame_count(int(lengths.max())), N_MELS)
    for row, wave in enumerate(waves):
        alone, count = log_mel(torch.from_numpy(wave).unsqueeze(0))
        assert int(frames[row]) == int(count[0]) == len(wave) // HOP + 1
        # Frames near the end see the padding (zeros) either way; the rest are equal.
        inner = int(count[0]) - 3
        torch.testing.assert_close(features[row, :inner], alone[0, :inner])
        assert (features[row, int(count[0]):] == 0).all()
    normal = normalise_features(features, frames)
    valid = normal[0, :int(frames[0])]
    torch.testing.assert_close(valid.mean(0), torch.zeros(N_MELS), atol=1e-4, rtol=0)
    assert valid.std(0).mean() == pytest.approx(1.0, abs=0.05)
    stacked, steps = stack_frames(normal, frames, 2)
    assert stacked.shape[-1] == 2 * N_MELS and steps.tolist() == ((frames + 1) // 2).tolist()
    torch.testing.assert_close(stacked[0, 1, N_MELS:], normal[0, 3])


def test_cepstral_smoothing_keeps_the_envelope_and_drops_the_pitch_ripple() -> None:
    time = torch.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    voiced = sum(torch.sin(2 * math.pi * 200 * k * time) / k for k in range(1, 20))
    features, _ = log_mel(voiced.unsqueeze(0))
    smooth = smooth_cepstrally(features, 13)

    def ripple(frames: torch.Tensor) -> float:  # curvature across the low bands
        return float(frames[0, 10:-10, :12].diff(dim=1).diff(dim=1).abs().mean())

    assert ripple(smooth) < ripple(features) / 3
    assert torch.allclose(smooth_cepstrally(features, N_MELS), features, atol=1e-4)
    flat = torch.full((1, 3, N_MELS), 2.5)
    assert torch.allclose(smooth_cepstrally(flat, 1), flat, atol=1e-5)
    assert torch.equal(smooth_cepstrally(torch.zeros(1, 2, N_MELS), 13),
                       torch.zeros(1, 2, N_MELS))


def test_a_floor_limits_the_range_of_band_energies_below_the_loudest() -> None:
    wave = torch.from_numpy(recording(3))
    quiet = torch.cat([wave, torch.zeros(800)]) + 1e-7 * torch.randn(len(wave) + 800)
    plain, frames = log_mel(quiet.unsqueeze(0))
    floored, _ = log_mel(quiet.unsqueeze(0), range_db=50.0)
    valid = floored[0, :int(frames[0])]
    assert float(valid.max() - valid.min()) <= 50.0 / 10 * math.log(10) + LOG_FLOOR
    assert float(plain[0, :int(frames[0])].min()) < float(valid.min()) - 1.0
    loud = plain[0] > plain[0].max() - 40.0 / 10 * math.log(10)
    assert torch.allclose(floored[0][loud], plain[0][loud])


def test_trim_silence_cuts_quiet_edges_and_keeps_the_digit() -> None:
    digit = torch.from_numpy(recording(5))
    padded = torch.cat([torch.zeros(4000), digit, torch.zeros(8000)])
    trimmed = trim_silence(padded)
    assert len(digit) - 2 * HOP <= len(trimmed) <= len(digit) + 6 * HOP


def test_the_spectrogram_classifier_reads_rows_of_a_padded_batch_as_alone() -> None:
    torch.manual_seed(0)
    model = SpectrogramClassifier(N_MELS, 10, frames_per_step=2, cell="gru", hidden_size=8,
                                  bidirectional=True, pooling="mean").eval()
    features = torch.randn(2, 30, 2 * N_MELS)
    features[1, 20:] = 0.0
    with torch.no_grad():
        both = model(features, torch.tensor([30, 20])).outputs
        alone = model(features[1:, :20]).outputs
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="multiple of 4"):
        SpectrogramClassifier(42, 10)


# --- the data set ---------------------------------------------------------------------------


def test_the_bundled_data_set_is_complete_and_splits_by_speaker() -> None:
    recordings = load_fsdd()
    assert len(recordings) == 2500
    assert {r.speaker for r in recordings} == set(SPEAKERS)
    assert all(len(r.samples) >= 0.1 * SAMPLE_RATE for r in recordings)
    own = fsdd_split()
    assert [len(own[s]) for s in ("train", "val", "test")] == [2000, 250, 250]
    assert {r.index for r in own["test"]} == set(range(5))
    for speaker in SPEAKERS:
        split = fsdd_split(speaker)
        assert {r.speaker for r in split["test"]} == {speaker} and len(split["test"]) == 500
        assert speaker not in {r.speaker for r in split["train"] + split["val"]}


def test_digit_strings_are_seeded_and_spoken_by_one_speaker() -> None:
    pool = fsdd_split("nicolas")["test"][:100] + fsdd_split("theo")["test"][:100]
    first = make_digit_strings(pool, 6, seed=3, split="test", min_digits=2, max_digits=4)
    again = make_digit_strings(pool, 2, seed=3, split="test", start=4, min_digits=2,
                               max_digits=4)
    assert all(2 <= len(digits) <= 4 for _, digits in first)
    for (wave, digits), (wave2, digits2) in zip(first[4:], again):
        assert digits == digits2 and np.array_equal(wave, wave2)
    assert all(set(d) <= {r.digit for r in pool} for _, d in first)


def test_data_names_are_parsed_and_bad_ones_are_one_line_errors() -> None:
    assert parse_data("fsdd") == parse_data("fsdd/" + ",".join(DEFAULT_OPTIONS))
    assert parse_data("fsdd:george/warp,mask").augment == ("warp", "mask")
    spec = parse_data("fsdd-strings:theo/none")
    assert spec.strings and spec.holdout == "theo" and spec.augment == spec.features == ()
    inner = parse_data("fsdd:theo-george-jackson/mask,lifter,floor")
    assert (inner.holdout, inner.without) == ("theo", ("george", "jackson"))
    assert inner.augment == ("mask",) and inner.features == ("lifter", "floor")
    for bad, words in (("fsd", "bundled spoken digits"), ("fsdd:lucas", "unknown speaker"),
                       ("fsdd:theo-lucas", "unknown speaker 'lucas'"),
                       ("fsdd:theo-theo", "each speaker once"),
                       ("fsdd:theo-george-jackson-nicolas", "at least two left"),
                       ("fsdd/pitch", "unknown option"), ("fsdd/", "option")):
        with pytest.raises(RunError, match=words) as caught:
            parse_data(bad)
        assert "\n" not in str(caught.value)


def test_an_inner_fold_leaves_a_speaker_out_of_every_part() -> None:
    split = fsdd_split("yweweler", without=["george"])
    assert [len(split[s]) for s in ("train", "val", "test")] == [1350, 150, 500]
    assert {r.speaker for r in split["train"]} == {"jackson", "nicolas", "theo"}
    with pytest.raises(ValueError, match="both held out and left out"):
        fsdd_split("theo", without=["theo"])


def test_training_batches_group_similar_lengths_and_read_every_row_once_an_epoch() -> None:
    lengths = torch.randint(1000, 20000, (512,), generator=torch.Generator().manual_seed(1))
    batches = [similar_lengths(lengths, 32, step, seed=3) for step in range(16)]
    assert sorted(torch.cat(batches).tolist()) == list(range(512))  # one epoch: 16 steps
    assert all(torch.equal(b, similar_lengths(lengths, 32, i, 3)) for i, b in enumerate(batches))
    padding = sum(float(lengths[b].max() - lengths[b].float().mean()) for b in batches)
    shuffled = [shuffled_rows(512, 32, step, 3) for step in range(16)]
    plain = sum(float(lengths[b].max() - lengths[b].float().mean()) for b in shuffled)
    assert padding < plain / 4
    # The batches of a group come in a random order, not shortest first.
    means = [float(lengths[b].float().mean()) for b in batches[:BUCKET_STEPS]]
    assert means != sorted(means)


def test_mixup_mixes_features_and_the_loss_of_the_two_digits() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(6, 9, 2 * N_MELS, generator=generator)
    frames, digits = torch.tensor([9, 8, 9, 7, 9, 5]), torch.tensor([0, 1, 2, 3, 4, 5])
    mixed, steps, (own, partner, shares) = mix_batch(features, frames, digits,
                                                     np.random.default_rng(4))
    assert torch.equal(own, digits) and bool((shares >= 0.5).all() and (shares <= 1).all())
    rows = [int(torch.nonzero(digits == d)[0]) for d in partner]
    for row, other in enumerate(rows):
        expected = shares[row] * features[row] + (1 - shares[row]) * features[other]
        assert torch.allclose(mixed[row], expected, atol=1e-6)
        assert steps[row] == max(frames[row], frames[other])
    model = DigitClassifier({"bands": N_MELS, "num_outputs": 10, "frames_per_step": 2,
                             "channels": 4, "cell": "gru", "hidden_size": 8}).eval()
    loss = model((mixed, steps), None, (own, partner, shares)).loss
    scores = model((mixed, steps)).outputs
    expected = (shares * torch.nn.functional.cross_entropy(scores, own, reduction="none")
                + (1 - shares) * torch.nn.functional.cross_entropy(scores, partner,
                                                                    reduction="none")).mean()
    assert torch.allclose(loss, expected)
    plain = model((mixed, steps), None, own).loss
    assert torch.allclose(model((mixed, steps), None, (own, partner, torch.ones(6))).loss, plain)
    with pytest.raises(RunError, match="mixup mixes the labels of isolated digits"):
        parse_data("fsdd-strings/mixup")


# --- training, recognize, inspect -----------------------------------------------------------


@pytest.fixture(scope="module")
def isolated_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("speech") / "isolated"
    code = main(["train", "--task", "speech", "--data", "fsdd:nicolas", "--hidden-size", "32",
                 "--layers", "1", "--steps", "60", "--eval-every", "30", "--lr", "0.01",
                 "--warmup", "5", "--threads", "1", "--out", str(out)])
    assert code == 0
    return out


def test_a_short_isolated_run_beats_chance_on_a_speaker_it_never_heard(isolated_run) -> None:
    report = json.loads((isolated_run / "report.json").read_text())
    assert report["validation"]["error_rate"] < 0.6  # chance: 0.9
    assert report["test"]["error_rate"] < 0.75  # nicolas, held out
    assert "test confusion" in report["sample"] and "250 recordings" not in report["sample"]


def test_recognize_prints_one_line_per_recording(isolated_run, tmp_path, cli) -> None:
    folder = tmp_path / "wavs"
    folder.mkdir()
    for digit in (1, 4):
        soundfile.write(folder / f"{digit}.wav", recording(digit, "nicolas"), 8000)
    soundfile.write(tmp_path / "seven.flac", recording(7, "nicolas"), 8000)
    code, out, err = cli("recognize", str(isolated_run), str(tmp_path / "seven.flac"),
                         str(folder))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(tmp_path / "seven.flac"), str(folder / "1.wav"), str(folder / "4.wav")]
    assert all(re.fullmatch(r"\d", line.split(": ")[1]) for line in lines)
    found = recognize_recordings(isolated_run, [folder])
    assert [digits for _, digits in found] == [line.split(": ")[1] for line in lines[1:]]
    (tmp_path / "bad").mkdir()
    for case, (path, words) in bad_recordings(tmp_path / "bad").items():
        if case == "folder":  # recognize reads the recordings in a folder
            continue
        code, out, err = cli("recognize", str(isolated_run), str(path))
        assert code == 1 and out == "" and err.count("\n") == 1, case
        assert words in err and err.startswith("rnnkit recognize: error: "), case
    code, _, err = cli("recognize", str(isolated_run), str(folder), "--stream")
    assert code == 1 and "unidirectional connected-digit run" in err
    code, _, err = cli("inspect", str(isolated_run), "--ctc",
                       str(tmp_path / "seven.flac"))
    assert code == 1 and "connected-digit run" in err


def test_a_connected_digit_run_recognizes_and_draws_a_recording(tmp_path, capsys, cli) -> None:
    run = tmp_path / "strings"
    code = main(["train", "--task", "speech", "--data", "fsdd-strings:theo/lifter,floor",
                 "--hidden-size", "8", "--layers", "1", "--embedding-size", "8", "--steps", "2",
                 "--eval-every", "2", "--threads", "1", "--out", str(run)])
    assert code == 0
    model, strings, switches = load_speech_run(run)
    assert strings and switches == ("lifter", "floor")
    report = json.loads((run / "report.json").read_text())
    assert set(report["test"]) == {"cer", "string_error"}
    assert "test string 0: label" in report["sample"]
    wave = np.concatenate([recording(2), np.zeros(800, np.float32), recording(9)])
    soundfile.write(tmp_path / "29.wav", wave, 8000)
    capsys.readouterr()
    code, out, err = cli("recognize", str(run), str(tmp_path / "29.wav"),
                         "--beam", "2")
    assert code == 0 and re.fullmatch(r".*29\.wav: \d*\n", out)
    # Recognition reads the recording with the run's feature switches.
    with torch.no_grad():
        steps = model(features_of([trim_silence(wave)], switches=switches)[0]).outputs[0]
    best = "".join(str(c - 1) for c in collapse_path(steps.argmax(-1).tolist()))
    assert recognize_recordings(run, [tmp_path / "29.wav"])[0][1] == best
    assert inspect_ctc(run, str(tmp_path / "29.wav"), tmp_path / "fig") == (
        tmp_path / "fig" / "ctc.png")
    assert (tmp_path / "fig" / "ctc.png").stat().st_size > 0


def test_stream_prints_the_digits_of_a_unidirectional_run_chunk_by_chunk(tmp_path,
                                                                         capsys, cli) -> None:
    run = tmp_path / "causal"
    assert main(["train", "--task", "speech", "--data", "fsdd-strings:theo/none",
                 "--no-bidirectional", "--hidden-size", "8", "--layers", "1",
                 "--embedding-size", "8", "--steps", "2", "--eval-every", "2", "--threads", "1",
                 "--out", str(run)]) == 0
    wave = np.concatenate([recording(6), np.zeros(1600, np.float32), recording(1)])
    soundfile.write(tmp_path / "61.flac", wave, 8000)
    model, strings = load_speech_model(run)
    with torch.no_grad():
        steps = model(features_of([read_audio(tmp_path / "61.flac")])[0]).outputs[0]
    whole = "".join(str(c - 1) for c in collapse_path(steps.argmax(-1).tolist()))
    assert strings and "".join(stream_digits(run, tmp_path / "61.flac", 10_000)) == whole
    capsys.readouterr()
    code, out, err = cli("recognize", str(run), str(tmp_path / "61.flac"),
                         "--stream", "--chunk-ms", "100")
    assert code == 0 and err == "" and re.fullmatch(r".*61\.flac: \d*\n", out)
    code, out, err = cli("recognize", str(run), str(tmp_path / "absent.wav"),
                         "--stream")
    assert code == 1 and "no such file" in err and err.count("\n") == 1

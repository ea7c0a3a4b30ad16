"""Speech recognition: audio decoding and its errors, subtitles, WER, chunking, every backend, the endpoint.

Speech is synthesised with espeak-ng at test time (tests/speech.py); other audio is made
with ffmpeg in tmp_path. Nothing here needs the network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plugins import automatic_speech_recognition as asr
from servers import AppServer
from speech import SENTENCES, sentences_with_pauses, synthesise
from zoo import audio
from zoo.errors import InvalidInput, ModelLoadError
from zoo.plugin import RunContext
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TASK = "automatic-speech-recognition"


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; a failure fails the test with ffmpeg's message."""
    assert shutil.which("ffmpeg"), "ffmpeg is not installed: apt install ffmpeg"
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def dominant_frequencies(samples: Any, rate: int, count: int) -> list[float]:
    """The `count` strongest frequencies (Hz) of a signal, strongest first, at least 50 Hz apart."""
    import numpy as np

    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    found: list[float] = []
    for i in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[i] - f) > 50 for f in found):
            found.append(float(freqs[i]))
        if len(found) == count:
            break
    return found


class Progress:
    """Collects ctx.progress reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[float | None, str]] = []

    def __call__(self, fraction: float | None, desc: str) -> None:
        self.reports.append((fraction, desc))

    def chunk_reports(self) -> list[str]:
        return [d for _, d in self.reports if "chunk" in d]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One espeak-ng sentence (22.05 kHz mono WAV)."""
    return synthesise(SENTENCES[0], tmp_path_factory.mktemp("speech") / "weather.wav")


@pytest.fixture(scope="module")
def tiny_asr(model_cache_dir: Path) -> Zoo:
    """This plugin alone on its tiny random Whisper, loaded once for the module."""
    return Zoo(Settings(offline=True, tiny=True, cache_dir=model_cache_dir, idle_unload_seconds=0,
                        plugins=(TASK,)))


# --------------------------------------------------------------------------- declaration


def test_declaration_and_lazy_imports() -> None:
    plugin = asr.AutomaticSpeechRecognition()
    assert plugin.endpoint() == "automatic_speech_recognition"
    assert [f.name for f in plugin.fields()] == ["audio", "language", "task", "timestamps"]
    assert [f.name for f in plugin.outputs] == ["text", "segments", "srt"]  # the text comes first
    assert plugin.outputs[1].headers == ("start", "end", "text")
    assert plugin.models.offline == "packaged:whisper-tiny.en"
    assert plugin.models.tiny == "tiny:automatic-speech-recognition"
    assert set(asr.BACKENDS) == {"faster-whisper", "transformers", "openai-whisper"}
    # The app must start fast: neither module may pull in numpy or a model library at import.
    code = ("import sys, plugins.automatic_speech_recognition, zoo.audio; "
            "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'whisper', 'faster_whisper', 'PIL') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- decoding


def test_decode_wav_resamples_to_16k_and_keeps_length(speech_wav: Path) -> None:
    import wave

    import numpy as np

    with wave.open(str(speech_wav)) as w:
        rate, frames = w.getframerate(), w.getnframes()
    assert rate == 22050  # espeak-ng's own rate, so this really resamples
    samples = audio.decode(speech_wav)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - frames * 16000 / rate) <= 2
    assert 0.01 < float(np.abs(samples).mean()) and float(np.abs(samples).max()) <= 1.0
    samples[0] = 0.5  # a writable copy, not ffmpeg's read-only buffer


def test_decode_stereo_48k_mp3_to_16k_mono(tmp_path: Path) -> None:
    # Left 440 Hz, right 660 Hz: a true downmix keeps both tones, taking one channel would not.
    mp3 = tmp_path / "stereo.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2.5",
           "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000:duration=2.5",
           "-filter_complex", "amerge=inputs=2", "-ac", "2", "-ar", "48000", str(mp3))
    info = audio.probe(mp3)
    assert (info.sample_rate, info.channels, info.codec) == (48000, 2, "mp3")
    samples = audio.decode(mp3)
    assert samples.ndim == 1
    assert abs(len(samples) / 16000 - 2.5) < 0.03  # the encoder's padding is trimmed
    peaks = sorted(dominant_frequencies(samples, 16000, 2))
    assert abs(peaks[0] - 440) < 3 and abs(peaks[1] - 660) < 3


def test_decode_reads_every_common_format(tmp_path: Path, speech_wav: Path) -> None:
    import numpy as np

    reference = audio.decode(speech_wav)
    for ext, codec in [("flac", "flac"), ("ogg", "libvorbis"), ("m4a", "aac"), ("webm", "libopus")]:
        out = tmp_path / f"speech.{ext}"
        ffmpeg("-i", str(speech_wav), "-c:a", codec, str(out))
        samples = audio.decode(out)
        assert abs(len(samples) - len(reference)) < 0.06 * 16000, ext
        # Lossy codecs colour the signal a little; its loudness envelope (50 ms steps) must still match.
        n = min(len(samples), len(reference)) // 800 * 800
        env = [np.abs(x[:n]).reshape(-1, 800).mean(axis=1) for x in (samples, reference)]
        assert np.corrcoef(env[0], env[1])[0, 1] > 0.9, ext


def test_streamed_wav_without_sizes_is_not_called_damaged(tmp_path: Path, speech_wav: Path) -> None:
    # A WAV written to a pipe has placeholder sizes; it is complete and must decode in full.
    streamed = tmp_path / "streamed.wav"
    with streamed.open("wb") as out:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(speech_wav), "-f", "wav", "-"],
                       stdout=out, check=True)
    assert len(audio.decode(streamed)) == len(audio.decode(speech_wav))


def _bad_file(kind: str, folder: Path, speech_wav: Path) -> Path:
    data = speech_wav.read_bytes()
    if kind == "empty":
        path = folder / "empty.wav"
        path.write_bytes(b"")
    elif kind == "png":
        png = folder / "picture.png"
        ffmpeg("-f", "lavfi", "-i", "color=red:size=16x16", "-frames:v", "1", str(png))
        path = folder / "picture.wav"
        png.rename(path)
    elif kind == "text":
        path = folder / "notes.mp3"
        path.write_text("These are meeting notes, not a recording.\n" * 20)
    elif kind == "header-only":
        path = folder / "header.wav"
        path.write_bytes(data[:44])
    elif kind == "half-wav":
        path = folder / "half.wav"
        path.write_bytes(data[: len(data) // 2])
    elif kind == "half-mp3":
        mp3 = folder / "whole.mp3"
        ffmpeg("-i", str(speech_wav), str(mp3))
        path = folder / "half.mp3"
        path.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 2])
    elif kind == "missing":
        path = folder / "nowhere.wav"
    return path


@pytest.mark.parametrize("kind, rule", [
    ("empty", "is an empty file (0 bytes)"),
    ("png", "has no audio track"),
    ("text", "cannot be read as audio: it is not an audio file, or it is damaged or cut short"),
    ("header-only", "contains no audio samples"),
    ("half-wav", "is truncated or damaged"),
    ("half-mp3", "is truncated or damaged"),
    ("missing", "must be an existing audio file"),
])
def test_bad_files_raise_clear_invalid_input(kind: str, rule: str, tmp_path: Path, speech_wav: Path) -> None:
    path = _bad_file(kind, tmp_path, speech_wav)
    with pytest.raises(InvalidInput) as err:
        audio.decode(path)
    exc = err.value
    assert exc.name == "audio" and rule in exc.message
    assert exc.fix  # every message says what to do
    if kind != "missing":
        assert path.name in exc.message and str(tmp_path) not in exc.message  # no server paths shown
    if kind in ("empty", "png", "text", "missing"):  # caught by the cheap probe too, before any model loads
        with pytest.raises(InvalidInput, match=re.escape(rule)):
            audio.probe(path)


def test_duration_limit(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000:duration=2.5", str(wav))
    assert len(audio.decode(wav, max_seconds=3)) == 40000
    with pytest.raises(InvalidInput) as err:
        audio.decode(wav, max_seconds=1)
    assert "must be at most 1 seconds long" in err.value.message and "ZOO_MAX_AUDIO_SECONDS" in err.value.fix
    info = audio.probe(wav)
    assert info.duration == pytest.approx(2.5, abs=0.01)
    with pytest.raises(InvalidInput, match=r"it is 2\.5 s long"):
        audio.check_duration(info, 1.0, wav.name)


def test_overlong_audio_is_refused_before_the_model_loads(tmp_path: Path, model_cache_dir: Path) -> None:
    wav = tmp_path / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000:duration=2.5", str(wav))
    zoo = Zoo(Settings(offline=True, tiny=True, cache_dir=model_cache_dir, plugins=(TASK,), max_audio_seconds=2))
    with pytest.raises(InvalidInput, match="at most 2 seconds"):
        zoo.run(TASK, audio=str(wav))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInput, match=r"empty file \(0 bytes\)"):
        zoo.run(TASK, audio=str(empty))
    assert zoo.models.cache.stats.loads == 0


# --------------------------------------------------------------------------- subtitles, WER, chunking


def test_srt_format_is_exact() -> None:
    segments = [(0.0, 2.5, " Hello world. "), (2.5, 3661.0024, "Second\nline"), (4.0, 4.0, "   "),
                (3700.2, 3699.0, "End before start")]
    assert audio.to_srt(segments) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n"
        "\n"
        "2\n00:00:02,500 --> 01:01:01,002\nSecond line\n"
        "\n"
        "3\n01:01:40,200 --> 01:01:40,200\nEnd before start\n"
    )
    assert audio.srt_timestamp(59.9996) == "00:01:00,000"
    assert audio.srt_timestamp(-3) == "00:00:00,000"
    assert audio.srt_timestamp(100 * 3600 + 0.001) == "100:00:00,001"
    assert audio.to_srt([]) == ""


@pytest.mark.parametrize("reference, hypothesis, expected", [
    ("the cat sat on the mat", "the cat sat on the mat", 0.0),
    ("the cat sat on the mat", "the cat sat on a mat", 1 / 6),  # one substitution
    ("the cat sat", "the cat", 1 / 3),  # one deletion
    ("the cat sat", "the black cat sat", 1 / 3),  # one insertion
    ("Hello, World!", "hello world", 0.0),  # case and punctuation do not count
    ("a well-known fact", "a well known fact.", 0.0),  # hyphens split words
    ("don't stop", "dont stop", 0.5),  # apostrophes inside words are kept
    ("it\u2019s fine", "it's fine", 0.0),  # typographic apostrophes are the same
    ("one two", "three four five six", 2.0),  # more errors than words
    ("", "", 0.0),
    ("", "something", 1.0),
    ("something", "", 1.0),
])
def test_word_error_rate(reference: str, hypothesis: str, expected: float) -> None:
    assert audio.word_error_rate(reference, hypothesis) == pytest.approx(expected)


def test_word_error_rate_without_normalising() -> None:
    assert audio.word_error_rate("Hello world", "hello world", normalise=False) == 0.5


def test_split_cuts_at_silence_into_windows() -> None:
    import numpy as np

    rate = 16000
    rng = np.random.default_rng(0)
    signal = (0.3 * rng.standard_normal(70 * rate)).astype(np.float32)
    for start in (27.0, 53.0):  # a half-second pause before each 30-s mark
        signal[int(start * rate): int((start + 0.5) * rate)] = 0.0
    chunks = audio.split(signal, rate)
    assert len(chunks) == 3
    assert all(c.duration <= 30.0 for c in chunks)
    assert 27.0 <= chunks[0].end <= 27.5 and 53.0 <= chunks[1].end <= 53.5  # cut inside the pauses
    assert chunks[0].start == 0.0 and chunks[-1].end == 70.0
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))  # contiguous
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), signal)  # nothing lost or repeated
    short = audio.split(signal[: 5 * rate], rate)
    assert len(short) == 1 and short[0].duration == 5.0
    with pytest.raises(ValueError):
        audio.split(signal, rate, window=10, search=10)


def test_timed_segments_split_at_timestamp_tokens() -> None:
    eot, ts = 100, 200  # ids below eot are text; eot..ts are special; ts and up are times (0.02 s apart)
    decode = lambda ids: " ".join(f"w{i}" for i in ids)  # noqa: E731
    tokens = [150, 200, 1, 2, 250, 250, 3, 260, 260, 4]  # <special> <0.00> w1 w2 <1.00> <1.00> w3 <1.20> <1.20> w4
    assert asr.timed_segments(tokens, eot, ts, decode, 2.0) == [(0.0, 1.0, "w1 w2"), (1.0, 1.2, "w3"),
                                                                 (1.2, 2.0, "w4")]
    # Text before any timestamp starts at 0; times past the chunk clamp to its end.
    assert asr.timed_segments([5, 6, 1700, 1700, 7], eot, ts, decode, 3.0) == [(0.0, 3.0, "w5 w6"),
                                                                               (3.0, 3.0, "w7")]
    assert asr.timed_segments([200, 150, 210], eot, ts, decode, 3.0) == []  # no text, no segment


def test_token_budget_scales_with_chunk_length() -> None:
    assert asr.token_budget(30.0) == 224 and asr.token_budget(60.0) == 224
    assert asr.token_budget(3.0) == 16 + 23
    assert asr.token_budget(1.0) < asr.token_budget(10.0) < asr.token_budget(20.0)


def test_gpu_seconds_grow_with_duration(tmp_path: Path) -> None:
    plugin = asr.AutomaticSpeechRecognition()
    short, long = tmp_path / "short.wav", tmp_path / "long.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=2", str(short))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=40", str(long))
    assert plugin.gpu_seconds({"audio": str(short)}) < plugin.gpu_seconds({"audio": str(long)})
    assert plugin.gpu_seconds({"audio": str(long)}) == pytest.approx(15 + 40 / 4, abs=0.1)
    # Unknown length: plan for the longest allowed.
    assert plugin.gpu_seconds({"audio": str(tmp_path / "gone.wav")}) == pytest.approx(15 + 600 / 4)


# --------------------------------------------------------------------------- backends on tiny random models


def test_tiny_transformers_through_the_zoo(tiny_asr: Zoo, speech_wav: Path, tmp_path: Path) -> None:
    duration = len(audio.decode(speech_wav)) / 16000
    progress = Progress()
    result = tiny_asr.run(TASK, ctx=RunContext(on_progress=progress, temp_dir=str(tmp_path)),
                          audio=str(speech_wav), timestamps=True)
    assert list(result) == ["text", "segments", "srt"]
    text, rows, srt = result["text"], result["segments"], Path(result["srt"])
    # Random weights write noise, but the plumbing must hold it together.
    assert isinstance(text, str) and text.strip()
    assert text == " ".join(r[2] for r in rows)
    assert all(0.0 <= s <= e <= duration + 0.01 for s, e, _ in rows)
    assert srt.name == "weather.srt"
    cues = srt.read_text(encoding="utf-8").strip().split("\n\n")
    assert len(cues) == len(rows) and cues[0].startswith("1\n00:00:")
    assert progress.chunk_reports() == [f"Transcribing 0–{duration:.0f} s of {duration:.0f} s (chunk 1/1)"]


def test_tiny_transformers_chunks_all_get_text(tiny_asr: Zoo, speech_wav: Path) -> None:
    samples = audio.decode(speech_wav)  # ~3.8 s, in 1.5-s windows: three chunks
    loaded = tiny_asr.models.load("tiny:automatic-speech-recognition", TASK)
    assert loaded.family == "transformers"
    progress = Progress()
    opts = asr.Options(language="en", task="transcribe", timestamps=False)
    segments = list(asr.transcribe_transformers(loaded.model, samples, opts, RunContext(on_progress=progress),
                                                window=1.5))
    chunks = audio.split(samples, 16000, window=1.5, search=1.5 / 4)
    assert len(chunks) == 3 and len(progress.chunk_reports()) == 3
    assert [s[:2] for s in segments] == [(c.start, c.end) for c in chunks]  # one segment per chunk, in place
    assert all(s[2].strip() for s in segments)  # every chunk produced text


def test_english_only_model_refuses_other_languages_and_translation(tiny_asr: Zoo, speech_wav: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        tiny_asr.run(TASK, audio=str(speech_wav), language="de")
    assert err.value.name == "language" and "English-only" in err.value.message
    with pytest.raises(InvalidInput) as err:
        tiny_asr.run(TASK, audio=str(speech_wav), task="translate")
    assert err.value.name == "task" and "multilingual" in err.value.fix
    with pytest.raises(InvalidInput, match="must be one of auto, en"):
        tiny_asr.run(TASK, audio=str(speech_wav), language="xx")
    opts = asr.resolve_options({"language": "auto", "task": "translate", "timestamps": True}, multilingual=True)
    assert opts == asr.Options(None, "translate", True)  # multilingual + auto: the model detects


def test_other_model_families_are_refused(speech_wav: Path) -> None:
    plugin = asr.AutomaticSpeechRecognition()
    not_whisper = SimpleNamespace(family="gguf", ref="some/model.gguf", model=None)
    values = {"audio": str(speech_wav), "language": "auto", "task": "transcribe", "timestamps": True}
    with pytest.raises(ModelLoadError, match="is a gguf model"):
        list(plugin.stream(not_whisper, values, RunContext()))


@pytest.fixture(scope="module")
def random_openai_whisper() -> Any:
    """A seeded random openai-whisper model with tiny.en's vocabulary, built in-process."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                           n_vocab=51864, n_text_ctx=448, n_text_state=32, n_text_head=4, n_text_layer=2)
    return Whisper(dims).eval()


def test_openai_whisper_backend_chunks_and_offsets(random_openai_whisper: Any, speech_wav: Path) -> None:
    model = random_openai_whisper
    assert not asr.is_multilingual("openai-whisper", model)
    opts = asr.resolve_options({"language": "auto", "task": "transcribe", "timestamps": True}, False)
    assert opts == asr.Options("en", "transcribe", True)
    samples = audio.decode(speech_wav)  # ~3.8 s, in 1.5-s windows: three chunks
    chunks = audio.split(samples, 16000, window=1.5, search=1.5 / 4)
    progress = Progress()
    segments = list(asr.transcribe_openai_whisper(model, samples, opts, RunContext(on_progress=progress),
                                                  window=1.5))
    assert len(chunks) == 3 and len(progress.chunk_reports()) == 3
    for chunk in chunks:  # every chunk produced text, timed inside that chunk's span
        inside = [s for s in segments if chunk.start <= s[0] and s[1] <= chunk.end + 1e-6]
        assert inside and all(s[2].strip() for s in inside)
    assert segments == sorted(segments, key=lambda s: s[0])


def test_openai_whisper_backend_runs_inside_the_plugin(random_openai_whisper: Any, speech_wav: Path,
                                                       tmp_path: Path) -> None:
    loaded = SimpleNamespace(family="openai-whisper", ref="openai-whisper:random", model=random_openai_whisper)
    values = {"audio": str(speech_wav), "language": "en", "task": "transcribe", "timestamps": False}
    *partial, final = list(asr.AutomaticSpeechRecognition().stream(loaded, values,
                                                                          RunContext(temp_dir=str(tmp_path))))
    duration = len(audio.decode(speech_wav)) / 16000
    assert len(final["segments"]) == 1 and final["segments"][0][:2] == (0.0, round(duration, 2))
    assert final["text"] == final["segments"][0][2] and final["text"]
    srt = Path(final["srt"])
    assert srt.parent.parent == tmp_path and srt.read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> 00:00:0")
    assert all(p["srt"] is None for p in partial)  # subtitles come once the transcript is complete


@pytest.mark.slow
def test_tiny_transformers_70_seconds_three_windows(tiny_asr: Zoo, tmp_path: Path) -> None:
    wav, _ = sentences_with_pauses(SENTENCES * 2, tmp_path / "long.wav", pause=1.0)
    duration = len(audio.decode(wav)) / 16000
    assert 60 < duration <= 90
    progress = Progress()
    started = time.perf_counter()
    result = tiny_asr.run(TASK, ctx=RunContext(on_progress=progress, temp_dir=str(tmp_path)), audio=str(wav),
                          timestamps=False)
    print(f"\ntiny transformers Whisper, {duration:.0f} s of audio: {time.perf_counter() - started:.1f}s")
    rows = result["segments"]
    assert len(progress.chunk_reports()) == 3 and len(rows) == 3
    assert rows[0][0] == 0.0 and 25 <= rows[1][0] <= 30 and 50 <= rows[2][0] <= 60 and rows[2][1] == round(duration, 2)
    assert all(r[2] for r in rows)


# --------------------------------------------------------------------------- real weights


@pytest.mark.real
def test_real_whisper_word_error_rate(real_zoo: Zoo, tmp_path: Path) -> None:
    plugin = real_zoo.registry.get(TASK)
    ref = real_zoo.default_model(plugin)
    assert real_zoo.models.load(ref, TASK).family == "faster-whisper"  # the packaged tiny.en, real weights
    references, hypotheses, rows = [], [], []
    for i, sentence in enumerate(SENTENCES):
        wav = synthesise(sentence, tmp_path / f"sentence{i}.wav")
        seconds = len(audio.decode(wav)) / 16000
        started = time.perf_counter()
        text = real_zoo.run(TASK, ctx=RunContext(temp_dir=str(tmp_path)), audio=str(wav))["text"]
        latency = time.perf_counter() - started
        references.append(sentence)
        hypotheses.append(text)
        rows.append((audio.word_error_rate(sentence, text), latency, seconds, text))
    wer = audio.word_error_rate(" ".join(references), " ".join(hypotheses))
    print(f"\n{ref} on {len(SENTENCES)} espeak-ng sentences: WER {wer:.3f}")
    for sentence_wer, latency, seconds, text in rows:
        print(f"  WER {sentence_wer:.2f}  {latency:.2f}s for {seconds:.1f}s of audio  {text}")
    assert len(SENTENCES) >= 5 and all(len(s.split()) >= 8 for s in SENTENCES)
    assert wer <= 0.25


@pytest.mark.real
def test_real_whisper_transcribes_every_window_of_long_audio(real_zoo: Zoo, tmp_path: Path) -> None:
    texts = SENTENCES * 2
    wav, spans = sentences_with_pauses(texts, tmp_path / "long.wav", pause=1.0)
    duration = len(audio.decode(wav)) / 16000
    assert 60 < duration <= 90  # three 30-s windows
    progress = Progress()
    started = time.perf_counter()
    result = real_zoo.run(TASK, ctx=RunContext(on_progress=progress, temp_dir=str(tmp_path)), audio=str(wav),
                           timestamps=True)
    latency = time.perf_counter() - started
    wer = audio.word_error_rate(" ".join(texts), result["text"])
    print(f"\nfaster-whisper tiny.en, {duration:.0f} s of audio: {latency:.1f}s, WER {wer:.3f}")
    rows = result["segments"]
    for window in ((0, 30), (30, 60), (60, duration)):  # text from every window, at its place in time
        inside = [r for r in rows if window[0] <= r[0] < window[1]]
        expected = " ".join(t for s, e, t in spans if window[0] <= s and e <= window[1])
        heard = " ".join(r[2] for r in inside)
        assert inside and audio.word_error_rate(expected, heard) <= 0.5, (window, heard)
    assert rows[-1][1] >= spans[-1][1] - 3  # the last sentence is there
    assert wer <= 0.25
    fractions = [f for f, d in progress.reports if d.startswith("Transcribed")]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    srt = Path(result["srt"]).read_text(encoding="utf-8")
    assert srt.count(" --> ") == len(rows)


# --------------------------------------------------------------------------- the HTTP endpoint


@pytest.mark.app
@pytest.mark.real
def test_endpoint_over_http(real_app_server: AppServer, model_cache_dir: Path, tmp_path: Path) -> None:
    """The session's `python app.py` on the real offline defaults (tests/conftest.py)."""
    from gradio_client import Client, handle_file

    zoo = Zoo(Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, plugins=(TASK,)))
    assert zoo.default_model(zoo.registry.get(TASK)) in ("openai/whisper-tiny.en", "packaged:whisper-tiny.en")
    wav = synthesise(SENTENCES[1], tmp_path / "window.wav")
    client = Client(real_app_server.url, verbose=False)
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][
        "/automatic_speech_recognition"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["audio", "language", "task", "timestamps", "model"]
    started = time.perf_counter()
    text, table, srt = client.predict(handle_file(str(wav)), "auto", "transcribe", True,
                                      "packaged:whisper-tiny.en", api_name="/automatic_speech_recognition")
    print(f"\n/automatic_speech_recognition over HTTP (includes model load): {time.perf_counter() - started:.2f}s"
          f"\n  {text}")
    words = set(audio.normalise_words(text))
    assert {"remember", "close", "window", "house"} <= words
    assert table["headers"] == ["start", "end", "text"] and table["data"]
    assert " --> " in Path(srt).read_text(encoding="utf-8") and Path(srt).suffix == ".srt"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match=r"empty file \(0 bytes\)"):
        client.predict(handle_file(str(empty)), "auto", "transcribe", True, "packaged:whisper-tiny.en",
                       api_name="/automatic_speech_recognition")

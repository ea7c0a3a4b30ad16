"""Piper voices: text to phonemes with espeak-ng, phonemes to speech with onnxruntime.

A Piper voice is two files: `<name>.onnx` (a VITS model exported to ONNX) and
`<name>.onnx.json` (sample rate, espeak voice, phoneme -> id map, inference scales).
The `piper` loader family returns a `PiperVoice`; the text-to-speech plugin calls
`synthesize`. Phonemes come from the `espeak-ng` program (a system package) run in a
subprocess, so no GPL library is linked into the zoo and no extra Python package is
needed; numpy and onnxruntime are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from zoo import helpers
from zoo.errors import HelperFailed, ModelLoadError, ModelNotFound, ZooError

if TYPE_CHECKING:
    import numpy as np

# Piper's special symbols: padding between phonemes, start and end of a sentence.
PAD, BOS, EOS = "_", "^", "$"
# Punctuation that ends a clause; the first three also end a sentence.
_SENTENCE_END = ".!?"
_CLAUSE_BREAK = re.compile(r"([.!?;:,\u2026]+)(?=\s|$)")
# espeak-ng marks words it reads in another language as "(fr)word(en)"; the flags are not phonemes.
_LANGUAGE_FLAG = re.compile(r"\([^)]*\)")


def voice_files(path: Path) -> tuple[Path, Path]:
    """The (model.onnx, model.onnx.json) pair at `path`: the .onnx file itself, or a folder holding one pair."""
    path = Path(path)
    if path.is_file():
        candidates = [path] if path.suffix == ".onnx" else []
    else:
        candidates = sorted(p for p in path.glob("*.onnx") if p.with_name(p.name + ".json").is_file())
    if not candidates:
        raise ModelNotFound(f"`{path}` holds no Piper voice (a `<name>.onnx` file with its `<name>.onnx.json`).",
                            "point at a Piper voice's .onnx file or the folder holding it and its .onnx.json")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ModelNotFound(f"`{path}` holds several Piper voices ({names}).", "point at one .onnx file")
    onnx = candidates[0]
    config = onnx.with_name(onnx.name + ".json")
    if not config.is_file():
        raise ModelNotFound(f"The Piper voice `{onnx.name}` has no `{config.name}` beside it.",
                            "download the voice's .onnx.json too (it holds the phoneme map and sample rate)")
    return onnx, config


def is_piper_voice(path: Path) -> bool:
    """True when `path` is a Piper .onnx file with its .onnx.json, or a folder holding such a pair."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".onnx" and path.with_name(path.name + ".json").is_file()
    return path.is_dir() and any(p.with_name(p.name + ".json").is_file() for p in path.glob("*.onnx"))


def split_clauses(text: str) -> list[list[tuple[str, str]]]:
    """Sentences of (clause text, terminator) pairs: `.!?` and line ends close a sentence, `,;:` a clause."""
    sentences: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        parts = _CLAUSE_BREAK.split(line)
        current: list[tuple[str, str]] = []
        # re.split with one group alternates text, punctuation, text, ...; the last text has none.
        for i in range(0, len(parts), 2):
            words = " ".join(parts[i].split())
            marks = parts[i + 1] if i + 1 < len(parts) else ""
            terminator = _terminator(marks)
            if words:
                current.append((words, terminator))
            elif current and terminator:  # a mark standing alone ("yes , .") belongs to the clause before
                current[-1] = (current[-1][0], terminator)
            if current and terminator and terminator in _SENTENCE_END:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
    return sentences


def _terminator(marks: str) -> str:
    """The one punctuation symbol a run of marks stands for: `?!` and `!?` ask, `…` ends a sentence."""
    if "?" in marks:
        return "?"
    if "!" in marks:
        return "!"
    return "." if marks[-1:] == "\u2026" else marks[-1:]


_INSTALL_ESPEAK = ("install it (Debian/Ubuntu: `apt install espeak-ng`; macOS: `brew install espeak-ng`; "
                   "on a Space: add `espeak-ng` to packages.txt), or pick a transformers text-to-speech model")


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise HelperFailed("Piper voices need the `espeak-ng` program to turn text into phonemes, and it is not "
                           "installed.", _INSTALL_ESPEAK, helper="espeak-ng")
    return path


@dataclass
class PiperVoice:
    """A loaded Piper voice: phonemize with espeak-ng, synthesise with onnxruntime."""

    session: Any  # onnxruntime.InferenceSession
    config: dict
    name: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path, threads: int = 0, device: str = "cpu") -> "PiperVoice":
        """Open the voice at `path` (an .onnx file or its folder); checks espeak-ng when the voice needs it."""
        import onnxruntime

        onnx, config_path = voice_files(path)
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"`{config_path}` is not a readable Piper config: {exc}",
                                 "download the voice's .onnx.json again") from exc
        kind = config.get("phoneme_type", "espeak")
        if kind not in ("espeak", "text"):
            raise ModelLoadError(f"The Piper voice `{onnx.name}` uses `{kind}` phonemes; this zoo reads `espeak` "
                                 "and `text` voices.", "pick another Piper voice")
        if not isinstance(config.get("phoneme_id_map"), dict) or not all(
                s in config["phoneme_id_map"] for s in (PAD, BOS, EOS)):
            raise ModelLoadError(f"`{config_path}` has no usable phoneme_id_map.",
                                 "download the voice's .onnx.json again")
        if kind == "espeak":
            _espeak()  # fail at load, with the fix, rather than on the first sentence
        options = onnxruntime.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        session = onnxruntime.InferenceSession(str(onnx), sess_options=options, providers=providers)
        return cls(session, config, onnx.name.removesuffix(".onnx"))

    # ------------------------------------------------------------------ facts from the config
    @property
    def sample_rate(self) -> int:
        """Samples per second of the audio this voice makes."""
        return int(self.config.get("audio", {}).get("sample_rate", 22050))

    @property
    def espeak_voice(self) -> str:
        """The espeak-ng voice the phonemes must come from (e.g. `en-us`)."""
        return str(self.config.get("espeak", {}).get("voice", "en-us"))

    @property
    def num_speakers(self) -> int:
        """Speakers in a multi-speaker voice (1 for most voices)."""
        return int(self.config.get("num_speakers", 1) or 1)

    # ------------------------------------------------------------------ text -> phonemes -> ids
    def _clause_phonemes(self, clause: str) -> str:
        if self.config.get("phoneme_type", "espeak") == "text":
            return clause
        # Text goes through stdin, so a clause starting with "-" is never read as an option.
        try:
            # A killed or vanished espeak-ng is the server's fault (HelperFailed), not the voice's.
            proc = helpers.run("espeak-ng", [_espeak(), "-q", "--ipa", "-b", "1", "-v", self.espeak_voice],
                               _INSTALL_ESPEAK, input=clause.encode("utf-8"), capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise HelperFailed("`espeak-ng` took more than 60 s on one clause and was stopped.",
                               "try again with shorter text; the operator can check that `espeak-ng` runs on its own",
                               helper="espeak-ng") from None
        if proc.returncode != 0:
            raise ZooError(f"espeak-ng failed on voice `{self.espeak_voice}`: "
                           f"{proc.stderr.decode('utf-8', 'replace').strip() or proc.returncode}",
                           "check that espeak-ng has this voice (`espeak-ng --voices`)")
        # espeak-ng prints one line per clause it finds; our clause may still be several.
        return " ".join(_LANGUAGE_FLAG.sub("", proc.stdout.decode("utf-8", "replace")).split())

    def phonemize(self, text: str) -> list[str]:
        """One phoneme string per sentence, punctuation kept (it shapes the voice's intonation)."""
        sentences = []
        for clauses in split_clauses(text):
            pieces = []
            for words, terminator in clauses:
                phonemes = self._clause_phonemes(words)
                if phonemes:
                    pieces.append(phonemes + terminator + (" " if terminator in (",", ";", ":") else ""))
            sentence = "".join(pieces).strip()
            if sentence:
                sentences.append(unicodedata.normalize("NFD", sentence))
        return sentences

    def phoneme_ids(self, phonemes: str) -> tuple[list[int], set[str]]:
        """Ids for one sentence (BOS, each phoneme followed by PAD, EOS) and the symbols the voice lacks."""
        table: dict[str, list[int]] = self.config["phoneme_id_map"]
        longest = max(len(k) for k in table)
        ids = [*table[BOS], *table[PAD]]
        missing: set[str] = set()
        i = 0
        while i < len(phonemes):
            # Longest match first: some voices map multi-character clusters (diphthongs) to one id.
            for size in range(min(longest, len(phonemes) - i), 0, -1):
                symbol = phonemes[i:i + size]
                if symbol in table:
                    ids += [*table[symbol], *table[PAD]]
                    i += size
                    break
            else:
                missing.add(phonemes[i])
                i += 1
        ids += table[EOS]
        return ids, missing

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, text: str, speed: float = 1.0, speaker_id: int = 0, sentence_silence: float = 0.2,
                   on_sentence: Callable[[int, int], None] | None = None) -> tuple["np.ndarray", dict]:
        """Speak `text`: mono float32 samples at `sample_rate`, and details (phonemes, unknown symbols).

        `on_sentence(done, total)` is called before each sentence; raise from it to stop early.
        """
        import numpy as np

        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        inference = self.config.get("inference", {})
        scales = np.array([inference.get("noise_scale", 0.667), inference.get("length_scale", 1.0) / speed,
                           inference.get("noise_w", 0.8)], dtype=np.float32)
        sentences = self.phonemize(text)
        silence = np.zeros(int(sentence_silence * self.sample_rate), dtype=np.float32)
        parts: list[np.ndarray] = []
        missing: set[str] = set()
        for n, phonemes in enumerate(sentences):
            if on_sentence is not None:
                on_sentence(n, len(sentences))
            ids, lacking = self.phoneme_ids(phonemes)
            missing |= lacking
            feed = {"input": np.array([ids], dtype=np.int64),
                    "input_lengths": np.array([len(ids)], dtype=np.int64), "scales": scales}
            if self.num_speakers > 1:
                feed["sid"] = np.array([speaker_id], dtype=np.int64)
            with self._lock:  # one run at a time per session keeps memory flat on small machines
                audio = self.session.run(None, feed)[0]
            parts += [np.asarray(audio, dtype=np.float32).reshape(-1), silence]
        samples = np.concatenate(parts[:-1]) if parts else np.zeros(0, dtype=np.float32)
        return samples, {"phonemes": sentences, "unknown_symbols": sorted(missing)}

"""Voice chat latency: a spoken question against the same question typed, side by side in one run.

Each question is spoken with espeak-ng (as the tests do); the typed turn sends the words speech recognition
heard, so the chat model gets the same input and (greedy) writes the same reply, and the difference is the
recognition step. All times count from the request's start, which is the end of speech (the recording is
complete when it is sent): time to the first reply word, to the first audio (the first sentence spoken),
to the complete reply text, and to the last sentence's audio. Runs on the offline defaults (SmolLM2-135M,
whisper tiny.en, Piper joe), models in worker processes as the server runs them, after one untimed turn
that loads them.
`python -m bench --only voice_chat`, or alone: `python -m bench.voice_chat [runs]`.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASK = "voice-chat"
#: A one-sentence answer and a several-sentence one (where speaking sentence by sentence matters).
QUESTIONS = ("What is the capital of Japan?", "Give me two tips for a good night's sleep.")
GREEDY = dict(temperature=0.0, repetition_penalty=1.0, seed=0, max_new_tokens=96)
METRICS = (("first_reply_word_s", "time to first reply word after the end of speech"),
           ("first_audio_s", "time to first audio"),
           ("reply_s", "full reply time (text complete)"),
           ("total_s", "reply fully spoken (last sentence's audio ready)"))


def row(name: str, value: float, unit: str, **kw: Any) -> dict[str, Any]:
    """One figure as bench/__main__.py's Row fields."""
    return {"section": "voice_chat", "name": name, "value": value, "unit": unit, **kw}


def speak(text: str, path: Path) -> str:
    """`text` spoken by espeak-ng into a WAV file."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is not installed: apt install espeak-ng")
    subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, capture_output=True,
                   timeout=60)
    return str(path)


def measure(runs: int = 3) -> list[dict[str, Any]]:
    """Median timings per question, spoken against typed, alternating; ratios spoken / typed."""
    from zoo.runner import Zoo
    from zoo.settings import Settings

    zoo = Zoo(Settings.from_env().replace(idle_unload_seconds=0, plugins=(
        TASK, "automatic-speech-recognition", "conversational", "text-to-speech")))
    folder = Path(tempfile.mkdtemp(prefix="bench-voice-chat-"))
    wavs = [speak(q, folder / f"q{i}.wav") for i, q in enumerate(QUESTIONS)]
    heard = [zoo.run(TASK, audio=w, **GREEDY)["transcript"] for w in wavs]  # untimed: loads the three models
    times: dict[tuple[int, str], dict[str, list[float]]] = {}
    replies: dict[tuple[int, str], str] = {}
    models: dict[str, str] = {}
    for _ in range(runs):
        for i, (wav, words) in enumerate(zip(wavs, heard)):
            for kind, values in (("spoken", {"audio": wav}), ("typed", {"message": words})):
                out = zoo.run(TASK, **values, **GREEDY)
                assert out["transcript"] == words, (out["transcript"], words)
                got = times.setdefault((i, kind), {})
                for key, value in out["details"]["timings"].items():
                    got.setdefault(key, []).append(value)
                got.setdefault("sentences", []).append(len(out["details"]["sentences"]))
                replies[(i, kind)] = out["reply"]
                if kind == "spoken":
                    models = out["details"]["models"]
    zoo.models.close()

    rows = []
    for i, question in enumerate(QUESTIONS):
        spoken, typed = times[(i, "spoken")], times[(i, "typed")]
        med = {kind: {k: statistics.median(v) for k, v in t.items()} for kind, t in (("spoken", spoken),
                                                                                     ("typed", typed))}
        same = "same reply" if replies[(i, "spoken")] == replies[(i, "typed")] else "the replies differ"
        label = f"{question!r} ({med['spoken']['sentences']:.0f} sentences)"
        for key, name in METRICS:
            s, t = med["spoken"][key], med["typed"][key]
            rows.append(row(f"{name}: {label}", s, "s", baseline="the same question typed (no recognition)",
                            baseline_value=t, ratio=s / t if t else None, runs=runs,
                            note=f"spoken {s:.2f} s, typed {t:.2f} s; recognition "
                                 f"{med['spoken']['recognition_s']:.2f} s; {same}"))
        first, full = med["spoken"]["first_audio_s"], med["spoken"]["reply_s"]
        rows.append(row(f"first audio against the complete reply (spoken): {label}", first, "s",
                        baseline="reply text complete", baseline_value=full, ratio=first / full, runs=runs,
                        target="audio starts before the reply is complete (ratio < 1) for several sentences",
                        met=(first < full) if med["spoken"]["sentences"] > 1 else None,
                        note=f"models: {', '.join(f'{k} {v}' for k, v in models.items())}"))
    return rows


if __name__ == "__main__":
    for r in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(r)

"""Voice chat (plugins/voice_chat.py): speech recognition, chat with the conversation so far, the reply spoken
sentence by sentence.

Fast tier: tiny models (and a scripted chat where timing matters): plumbing, text-only turns skip recognition,
sentence splitting, history, errors that keep the conversation, Stop, the tab's handlers, the CLI.
Real tier: espeak-ng questions to SmolLM2 through whisper tiny.en, the answers checked for the right fact, and
the spoken reply run back through speech recognition against the reply text (WER).
App and browser tiers: /voice_chat over gradio_client, and a spoken question uploaded in the tab.
"""

from __future__ import annotations

import json
import re
import threading
import time
import wave
from pathlib import Path
from typing import Any, Iterator

import pytest

from facts import FACTS, is_right
from speech import synthesise, write_wav
from zoo import audio as zoo_audio
from zoo.errors import Cancelled, InvalidInput, UnknownPlugin
from zoo.plugin import Plugin, RunContext, Text, Json
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

from plugins.automatic_speech_recognition import AutomaticSpeechRecognition
from plugins.text_to_speech import TextToSpeech
from plugins.voice_chat import (DEFAULT_SYSTEM_PROMPT, MAX_QUESTION_SECONDS, NO_SPEECH_FIX, SentenceSplitter,
                                VoiceChat, speakable, spoken_words)

TASK = "voice-chat"
QUICK = dict(max_new_tokens=24, temperature=1.0, seed=3)


def wav_seconds(path: str | Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken question (espeak-ng)."""
    return synthesise("What is the capital of Japan?", tmp_path_factory.mktemp("voice") / "question.wav")


@pytest.fixture
def silence(tmp_path: Path) -> Path:
    """Two seconds of digital silence: a recording with nothing in it."""
    return zoo_audio.write_wav(tmp_path / "silence.wav", [0.0] * 32000)


# --------------------------------------------------------------------------- WER


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """An integer below a billion in English words: 24 -> twenty four, 1689 -> one thousand six hundred eighty nine."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return f"{number_words(n // size)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(n)


CONTRACTIONS = (("it's", "it is"), ("that's", "that is"), ("there's", "there is"), ("they're", "they are"),
                ("we're", "we are"), ("you're", "you are"), ("I'm", "I am"), ("don't", "do not"),
                ("doesn't", "does not"), ("isn't", "is not"), ("aren't", "are not"), ("can't", "cannot"),
                ("won't", "will not"), ("I'll", "I will"), ("you'll", "you will"), ("I've", "I have"))


def normalise_for_wer(text: str) -> str:
    """Text as both sides of a WER are compared: markdown left out, numbers as words, ordinals' suffixes dropped
    (17th -> seventeen), decimals read out (149.7 -> one hundred forty nine point seven); zoo.audio's
    word_error_rate then folds case and punctuation."""
    text = speakable(text).replace("\u2019", "'")
    for short, long in CONTRACTIONS:  # "They're" and "There are" sound alike: count them as one error, not two
        text = re.sub(rf"\b{short}\b", long, text, flags=re.IGNORECASE)
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)  # 1,000 -> 1000
    text = re.sub(r"(\d+)\.(\d+)", lambda m: f"{m[1]} point {' '.join(m[2])}", text)
    text = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text)
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m[0]))} " if len(m[0]) < 10 else m[0], text)
    return text


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after `normalise_for_wer` on both sides."""
    return zoo_audio.word_error_rate(normalise_for_wer(reference), normalise_for_wer(hypothesis))


def test_wer_normalises_case_punctuation_and_numbers() -> None:
    assert wer("There are 24 hours in a day.", "there are twenty-four hours in a day") == 0.0
    assert wer("A spider has eight legs!", "A spider has 8 legs.") == 0.0
    assert wer("It is **149.7 million** km.", "It is one hundred forty nine point seven million km") == 0.0
    assert wer("The 17th-century play", "the seventeen century play") == 0.0
    assert wer("The capital of Japan is Tokyo.", "The capital of Japan is Kyoto.") == pytest.approx(1 / 6)
    assert wer("one two three four", "") == 1.0
    assert wer("There are 24 hours in a day.", "They're 24 hours in a day.") == pytest.approx(1 / 8)  # 24: two words
    assert wer("It's cold.", "it is cold") == 0.0
    assert words_of("It's 2.5 km.") == ["it", "is", "two", "point", "five", "km"]


def words_of(text: str) -> list[str]:
    """The words a WER counts in `text`."""
    return zoo_audio.normalise_words(normalise_for_wer(text))


# --------------------------------------------------------------------------- sentence splitting


def feed_word_by_word(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """Feed a reply as a model streams it (a word at a time): (words seen when each sentence came out, the rest)."""
    splitter, out = SentenceSplitter(), []
    pieces = re.findall(r"\s*\S+", text)
    for n in range(1, len(pieces) + 1):
        out += [(n, s) for s in splitter.feed("".join(pieces[:n]))]
    return out, splitter.finish(text)


def test_sentences_come_out_as_they_complete() -> None:
    out, rest = feed_word_by_word("The capital of Japan is Tokyo. It is a big city! Do you want to visit?")
    assert [s for _, s in out] == ["The capital of Japan is Tokyo.", "It is a big city!"]
    # A sentence is handed out when the next word starts (a period may still be "3.5"), not at the reply's end.
    assert [n for n, _ in out] == [7, 12]
    assert rest == ["Do you want to visit?"]


def test_abbreviations_initials_decimals_and_list_numbers_do_not_end_a_sentence() -> None:
    text = ("Dr. Smith met Mr. J. R. Tolkien in the U.S. in 1950. Pi is about 3.14 today.\n"
            "1. Sleep well.\n2. Eat well.")
    out, rest = feed_word_by_word(text)
    assert [s for _, s in out] + rest == ["Dr. Smith met Mr. J. R. Tolkien in the U.S. in 1950.",
                                          "Pi is about 3.14 today.", "1. Sleep well.", "2. Eat well."]


def test_a_long_sentence_is_spoken_at_its_last_comma_and_a_run_on_one_is_cut() -> None:
    long = ("When you go to bed at the same time every night, and you wake up at the same time every morning, "
            "your body learns the rhythm and you fall asleep faster")
    out, rest = feed_word_by_word(long)
    assert out and out[0][1].endswith("every morning,"), out
    assert " ".join([s for _, s in out] + rest) == long
    run_on = " ".join(["word"] * 100)
    out, rest = feed_word_by_word(run_on)
    assert all(len(s.split()) <= 48 for _, s in out) and " ".join([s for _, s in out] + rest) == run_on


def test_speakable_leaves_out_markdown_and_empty_sentences_are_not_spoken() -> None:
    assert speakable("1. **Keep a schedule** - go to [bed](https://example.com) on time.") == \
        "Keep a schedule - go to bed on time."
    assert speakable("### Tips") == "Tips" and speakable("***") == "" and speakable(" - ") == ""
    splitter = SentenceSplitter()
    assert splitter.feed("**...** \n\n") == [] and splitter.finish("**...** \n\n") == []
    assert spoken_words(" [BLANK_AUDIO] (music) ") == "" and spoken_words("[Music] Hello there") == "Hello there"


# --------------------------------------------------------------------------- fast tier: tiny models


def test_declaration(tiny_zoo: Zoo) -> None:
    plugin = tiny_zoo.registry.get(TASK)
    assert plugin.endpoint() == "voice_chat" and plugin.can_stream and plugin.models is None
    assert dict(plugin.uses) == {"transcriber": "automatic-speech-recognition", "chat": "conversational",
                                 "voice": "text-to-speech"}
    assert tiny_zoo.composition_problem(plugin) is None
    names = [f.name for f in plugin.fields()]
    assert names[:4] == ["audio", "message", "history", "system_prompt"]
    assert names[-3:] == ["transcriber_model", "chat_model", "voice_model"]
    assert [f.name for f in plugin.outputs] == ["transcript", "reply", "audio", "history", "details"]
    assert next(f for f in plugin.outputs if f.name == "audio").autoplay
    for example in plugin.examples:  # every declared example runs
        out = tiny_zoo.run(TASK, **{**example, **QUICK})
        assert out["history"][-2]["content"] == example["message"]


def test_text_only_turn_skips_recognition_and_speaks_the_whole_reply(tiny_zoo: Zoo) -> None:
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    outs = list(tiny_zoo.stream(TASK, {"message": "Tell me a story.", "history": history, **QUICK}))
    final = outs[-1]
    assert final["transcript"] == "Tell me a story."
    details = final["details"]
    assert details["input"] == "text" and "recognition_s" not in details["timings"]
    assert set(details["models"]) == {"chat", "voice"}  # no transcriber ran
    assert details["models"] == {"chat": "tiny:causal-lm", "voice": "tiny:text-to-speech"}
    # The history grows by the user's words and the reply, the earlier turns kept as they were.
    assert final["history"] == [*history, {"role": "user", "content": "Tell me a story."},
                                {"role": "assistant", "content": final["reply"]}]
    assert final["reply"].strip()
    # The reply streams: replies grow, and only the last result carries the whole spoken reply.
    replies = [o["reply"] for o in outs]
    assert all(b.startswith(a) for a, b in zip(replies, replies[1:])) and len(set(replies)) >= 3
    assert all(o["audio"] is None for o in outs[:-1]) and final["audio"].endswith(".wav")
    sentences = details["sentences"]
    assert sentences and len(final["sentence_audio"]) == len([s for s in sentences if "seconds" in s])
    # The whole reply is the sentences' audio, 0.2 s apart.
    spoken = sum(wav_seconds(p) for p in final["sentence_audio"]) + 0.2 * (len(final["sentence_audio"]) - 1)
    assert wav_seconds(final["audio"]) == pytest.approx(spoken, abs=0.01)
    assert details["reply_audio_seconds"] == pytest.approx(spoken, abs=0.01)
    timings = details["timings"]
    assert 0 < timings["first_reply_word_s"] <= timings["reply_s"] <= timings["total_s"]
    assert timings["first_audio_s"] <= timings["total_s"]


def test_spoken_turn_transcribes_then_answers(tiny_zoo: Zoo, question: Path) -> None:
    heard = tiny_zoo.run("automatic-speech-recognition", audio=str(question), timestamps=False)["text"]
    out = tiny_zoo.run(TASK, audio=str(question), **QUICK)
    assert out["transcript"] == spoken_words(heard) and out["transcript"]
    assert out["history"][0] == {"role": "user", "content": out["transcript"]}
    details = out["details"]
    assert details["input"] == "speech" and details["question_seconds"] == pytest.approx(wav_seconds(question), 0.05)
    assert set(details["models"]) == {"transcriber", "chat", "voice"}
    assert 0 < details["timings"]["recognition_s"] <= details["timings"]["first_reply_word_s"]
    # gradio_client sends an upload as a FileData dict; the part pickers pick each step's model.
    again = tiny_zoo.run(TASK, audio={"path": str(question), "meta": {"_type": "gradio.FileData"}},
                         transcriber_model="tiny:automatic-speech-recognition", **QUICK)
    assert again["transcript"] == out["transcript"]


def test_bad_input_errors_name_the_value_and_the_fix(tiny_zoo: Zoo, silence: Path, tmp_path: Path,
                                                     question: Path) -> None:
    with pytest.raises(InvalidInput, match="is empty and there is no recording either") as err:
        tiny_zoo.run(TASK, message="   ")
    assert "record or upload a spoken question, or type a message" in str(err.value)
    with pytest.raises(InvalidInput, match="a turn is one or the other"):
        tiny_zoo.run(TASK, audio=str(question), message="And this too")
    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run(TASK, audio=str(silence))
    assert NO_SPEECH_FIX in str(err.value) and "silence.wav" in str(err.value)
    assert NO_SPEECH_FIX == "I heard nothing; speak closer to the microphone or upload a recording"
    long = write_wav(tmp_path / "lecture.wav", seconds=MAX_QUESTION_SECONDS + 2)
    with pytest.raises(InvalidInput, match=r"must be at most 60 seconds long for a voice chat, and it is 62\.0 s"):
        tiny_zoo.run(TASK, audio=str(long))
    with pytest.raises(InvalidInput, match=r"history\[0\]\.role"):
        tiny_zoo.run(TASK, message="hi", history=[{"role": "robot", "content": "beep"}])
    with pytest.raises(InvalidInput, match="`temperature`"):
        tiny_zoo.run(TASK, message="hi", temperature=9)
    with pytest.raises(InvalidInput, match="cannot be read as audio"):
        tiny_zoo.run(TASK, audio=str(Path(__file__)))


def test_the_operators_audio_limit_is_the_cap_when_it_is_lower(settings: Settings, tmp_path: Path) -> None:
    zoo = Zoo(settings.replace(tiny=True, max_audio_seconds=2.0))
    with pytest.raises(InvalidInput, match="at most 2 seconds") as err:
        zoo.run(TASK, audio=str(write_wav(tmp_path / "three.wav", seconds=3)))
    assert "ZOO_MAX_AUDIO_SECONDS" in str(err.value)


def test_a_missing_sub_model_is_a_clear_error_in_the_endpoint_and_the_tab(settings: Settings) -> None:
    from zoo.ui import build_demo

    zoo = Zoo(settings.replace(tiny=True, disabled_plugins=("text-to-speech",)))
    assert TASK in zoo.registry
    with pytest.raises(UnknownPlugin) as err:
        zoo.run(TASK, message="hi")
    assert ("its part `voice` uses task `text-to-speech`, and no plugin for `text-to-speech` is served here"
            in str(err.value))
    # The tab says so before anyone presses Send, and Send gives the same error, the conversation kept.
    import gradio as gr

    demo = build_demo(zoo)
    notes = [c["props"].get("value", "") for c in demo.get_config_file()["components"] if c["type"] == "markdown"]
    assert any("no plugin for <code>text-to-speech</code> is served here" in str(n) for n in notes)
    stage, respond = _ui_fns(demo)
    chat = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]
    _, _, _, pending = stage(None, "hi", chat)
    gen = respond(pending, DEFAULT_SYSTEM_PROMPT, *_ui_options(zoo), progress=lambda *a, **k: None)
    restored = next(gen)
    assert restored[0] == chat and restored[5] == "hi"
    with pytest.raises(gr.Error, match="text-to-speech"):
        next(gen)


# --------------------------------------------------------------------------- a scripted chat: timing and Stop


class ScriptedChat(Plugin):
    """Stands in for the chat tab: streams a fixed three-sentence reply a word every 80 ms."""

    api_version = 2
    task = "conversational"
    title = "Scripted chat"
    models = None
    REPLY = ("The capital of Japan is Tokyo. It is one of the largest cities in the world. "
             "Many people visit it every year to see its temples and gardens.")
    inputs = (Text("message"), Json("history", default=[]), Text("system_prompt", "", required=False))
    options = tuple(VoiceChat.options[:6])  # the sampling options voice chat passes on
    outputs = (Text("reply"), Json("history"))

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        reply = ""
        for word in re.findall(r"\s*\S+", self.REPLY):
            ctx.raise_if_cancelled()
            time.sleep(0.08)
            reply += word
            yield {"reply": reply, "history": [*values["history"], {"role": "user", "content": values["message"]},
                                               {"role": "assistant", "content": reply}]}


@pytest.fixture
def scripted_zoo(settings: Settings) -> Zoo:
    registry = Registry()
    for cls in (VoiceChat, ScriptedChat, AutomaticSpeechRecognition, TextToSpeech):
        registry.register(cls, "tests.test_voice_chat")
    return Zoo(settings.replace(tiny=True), registry=registry)


def test_the_first_sentence_is_spoken_before_the_reply_is_complete(scripted_zoo: Zoo) -> None:
    scripted_zoo.run("text-to-speech", text="Warm up.")  # the voice's model loaded: its first load is not timed
    outs = list(scripted_zoo.stream(TASK, {"message": "What is the capital of Japan?"}))
    final = outs[-1]
    assert final["reply"] == ScriptedChat.REPLY
    sentences = final["details"]["sentences"]
    assert [s["text"] for s in sentences] == ["The capital of Japan is Tokyo.",
                                              "It is one of the largest cities in the world.",
                                              "Many people visit it every year to see its temples and gardens."]
    timings = final["details"]["timings"]
    # 28 words at 80 ms: the reply takes 2.2 s; the first sentence (6 words, then the next word) is spoken long before.
    assert timings["first_audio_s"] < timings["reply_s"] - 0.8, timings
    first_audio = next(i for i, o in enumerate(outs) if o["sentence_audio"])
    assert outs[first_audio]["reply"] != ScriptedChat.REPLY  # the audio arrived while the reply still grew
    assert sentences[0]["ready_s"] == timings["first_audio_s"] and sentences[1]["ready_s"] < timings["reply_s"]
    assert wav_seconds(final["audio"]) == pytest.approx(sum(s["seconds"] for s in sentences) + 0.4, abs=0.01)


def test_stop_ends_the_reply_and_the_voice(scripted_zoo: Zoo) -> None:
    ctx = RunContext()
    seen: list[dict] = []
    with pytest.raises(Cancelled):
        for out in scripted_zoo.stream(TASK, {"message": "Tell me about Tokyo."}, ctx):
            seen.append(out)
            if out["sentence_audio"]:
                ctx.cancel_event.set()  # Stop, as the tab's button does
    assert ScriptedChat.REPLY.startswith(seen[-1]["reply"]) and seen[-1]["reply"] != ScriptedChat.REPLY
    deadline = time.perf_counter() + 5
    while any(t.name == "zoo-voice-chat-speaker" for t in threading.enumerate()):
        assert time.perf_counter() < deadline, "the voice kept speaking after Stop"
        time.sleep(0.05)


# --------------------------------------------------------------------------- fast tier: the tab


def _ui_fns(demo: Any) -> tuple[Any, Any]:
    """The voice tab's `stage` and `respond` (the chat tab has handlers of the same names)."""
    def ours(fn: Any) -> bool:
        return any(getattr(c, "elem_id", None) == f"zoo-{TASK}-out-audio" for c in fn.outputs)

    stage = next(f.fn for f in demo.fns.values() if f.name == "stage" and f.fn.__module__ == "plugins.voice_chat")
    respond = next(f.fn for f in demo.fns.values() if f.name == "respond" and ours(f))
    return stage, respond


def _ui_options(zoo: Zoo) -> list[Any]:
    plugin = zoo.registry.get(TASK)
    return [*(f.default for f in plugin.options), *("" for _ in plugin.uses)]


def test_tab_streams_the_turn_into_the_conversation_and_the_player(tiny_zoo: Zoo, silence: Path) -> None:
    from zoo.ui import build_demo

    demo = build_demo(tiny_zoo)
    endpoints = demo.get_api_info()["named_endpoints"]
    assert "/voice_chat" in endpoints and not {"/stage", "/respond", "/lambda"} & set(endpoints)
    assert [p["parameter_name"] for p in endpoints["/voice_chat"]["parameters"]][:4] == [
        "audio", "message", "history", "system_prompt"]
    stage, respond = _ui_fns(demo)
    quiet = dict(progress=lambda *a, **k: None)
    options = _ui_options(tiny_zoo)
    options[0] = 24  # max_new_tokens

    box, shown, player, pending = stage(None, "Hello there.", [])
    assert box == "" and shown == [{"role": "user", "content": "Hello there."}] and player is None
    updates = list(respond(pending, DEFAULT_SYSTEM_PROMPT, *options, **quiet))
    chat, transcript, reply = updates[-1][:3]
    assert [m["role"] for m in chat] == ["user", "assistant"] and chat[1]["content"] == reply and reply
    assert transcript == "Hello there."
    chunks = [u[3] for u in updates if isinstance(u[3], str)]
    assert chunks and all(c.endswith(".wav") for c in chunks), chunks  # each sentence, then a pause, to the player
    assert updates[-1][6] is None  # the recording box is emptied for the next turn

    # A recording with nothing in it: the error names the fix, and the conversation is what it was.
    import gradio as gr

    _, shown, _, pending = stage({"path": str(silence)}, "", chat)
    assert shown == chat  # a recording shows its words once they are transcribed
    gen = respond(pending, DEFAULT_SYSTEM_PROMPT, *options, **quiet)
    restored = next(gen)
    assert restored[0] == chat
    with pytest.raises(gr.Error, match="I heard nothing; speak closer to the microphone or upload a recording"):
        next(gen)


# --------------------------------------------------------------------------- CLI


def test_cli_runs_a_typed_and_a_spoken_turn(question: Path, model_cache_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.cli import main

    monkeypatch.setenv("ZOO_CACHE_DIR", str(model_cache_dir))
    assert main(["--tiny", "run", TASK, "--message", "Hello there.", "--max-new-tokens", "12", "--seed", "1",
                 "--out", str(tmp_path)]) == 0
    typed = json.loads(capsys.readouterr().out)
    assert typed["transcript"] == "Hello there." and typed["reply"] and wav_seconds(typed["audio"]) > 0
    assert typed["details"]["input"] == "text"
    assert main(["--tiny", "run", TASK, "--audio", str(question), "--max-new-tokens", "12",
                 "--history", json.dumps(typed["history"])]) == 0
    spoken = json.loads(capsys.readouterr().out)
    assert spoken["details"]["input"] == "speech" and len(spoken["history"]) == 4
    assert spoken["history"][:2] == typed["history"] and Path(spoken["audio"]).is_file()
    assert main(["--tiny", "run", TASK]) == 2
    assert "record or upload a spoken question, or type a message" in capsys.readouterr().err


# --------------------------------------------------------------------------- real weights


# Questions whose answers SmolLM2-135M knows and says in one short sentence at temperature 0, heard right by
# whisper tiny.en from espeak-ng (tests/facts.py's "capital of France" is heard as "capital on France", "days
# in a week" as "days aren't there", "opposite of hot" as "opposite of heart", so those are left out), each
# with the fact its answer must hold. Short answers keep the reply audio short, and the test quick.
SPOKEN_QUESTIONS = {
    "What is the capital of Japan?": dict(FACTS)["What is the capital of Japan?"],
    "What is the capital of the United Kingdom?": dict(FACTS)["What is the capital of the United Kingdom?"],
    "How many legs does a spider have?": dict(FACTS)["How many legs does a spider have?"],
    "How many hours are there in a day?": dict(FACTS)["How many hours are there in a day?"],
    "How many months are there in a year?": r"\b(12|twelve)\b",
    "What is the capital of China?": r"\bBeijing\b",
}
GREEDY = dict(temperature=0.0, repetition_penalty=1.0, seed=0, max_new_tokens=64)


@pytest.mark.real
@pytest.mark.slow  # about 45 s on a shared 2-core machine, loading the three models included
def test_real_spoken_questions_get_the_right_fact_and_the_spoken_reply_matches_its_text(
        real_zoo: Zoo, tmp_path: Path) -> None:
    right, rates, errors, words, lines = 0, [], 0.0, 0, []
    for i, (q, fact) in enumerate(SPOKEN_QUESTIONS.items()):
        wav = synthesise(q, tmp_path / f"q{i}.wav")
        out = real_zoo.run(TASK, audio=str(wav), **GREEDY)
        models = out["details"]["models"]
        assert not any(m.startswith("tiny:") for m in models.values()), models
        ok = is_right(out["reply"], fact)
        right += ok
        back = real_zoo.run("automatic-speech-recognition", audio=out["audio"], timestamps=False)["text"]
        rate = wer(out["reply"], back)
        rates.append(rate)
        errors += rate * len(words_of(out["reply"]))
        words += len(words_of(out["reply"]))
        lines.append(f"{'ok ' if ok else 'NO '} WER {rate:.3f} {out['transcript']!r} -> {out['reply']!r} "
                     f"(heard back {back!r}; first word {out['details']['timings']['first_reply_word_s']} s, "
                     f"first audio {out['details']['timings']['first_audio_s']} s)")
    report = "\n".join(lines)
    corpus = errors / words
    print(f"\n{report}\nright facts {right}/{len(SPOKEN_QUESTIONS)}; WER over all {words} reply words "
          f"{corpus:.3f} (per reply: mean {sum(rates) / len(rates):.3f}, max {max(rates):.3f})")
    assert right >= 5, report
    # The WER of the test set (every reply's word errors over all their words), as speech recognition is scored;
    # and no single reply garbled (a six-word reply with one misheard word is at 0.17, two at 0.33).
    assert corpus <= 0.3, report
    assert max(rates) <= 0.5, report


@pytest.mark.real
def test_real_typed_turn_remembers_the_conversation(real_zoo: Zoo) -> None:
    first = real_zoo.run(TASK, message="What is the capital of Japan?", **GREEDY)
    assert "Tokyo" in first["reply"] and "transcriber" not in first["details"]["models"]
    second = real_zoo.run(TASK, message="And what is the capital of the United Kingdom?", history=first["history"],
                          **GREEDY)
    assert "London" in second["reply"], second["reply"]
    assert second["history"][:2] == first["history"] and len(second["history"]) == 4


# --------------------------------------------------------------------------- app tier


@pytest.mark.app
def test_voice_chat_endpoint_over_http(app_server: Any, question: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    transcript, reply, spoken, history, details = client.predict(
        audio=handle_file(str(question)), message="", history=[], max_new_tokens=12, seed=1, api_name="/voice_chat")
    assert transcript and isinstance(reply, str) and reply
    assert history == [{"role": "user", "content": transcript}, {"role": "assistant", "content": reply}]
    assert Path(spoken).read_bytes()[:4] == b"RIFF" and wav_seconds(spoken) > 0
    assert details["input"] == "speech" and set(details["models"]) == {"transcriber", "chat", "voice"}
    # A typed turn continues it; a silent recording is refused with the fix.
    _, reply2, _, history2, details2 = client.predict(audio=None, message="Tell me more.", history=history,
                                                      max_new_tokens=12, api_name="/voice_chat")
    assert history2[:2] == history and history2[-1]["content"] == reply2 and details2["input"] == "text"
    quiet = zoo_audio.write_wav(tmp_path / "quiet.wav", [0.0] * 16000)
    with pytest.raises(Exception, match="I heard nothing; speak closer to the microphone or upload a recording"):
        client.predict(audio=handle_file(str(quiet)), message="", history=history, api_name="/voice_chat")


@pytest.mark.app
@pytest.mark.real
def test_real_voice_chat_endpoint_answers_a_spoken_question(real_app_server: Any, question: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(real_app_server.url, verbose=False)
    transcript, reply, spoken, history, details = client.predict(
        audio=handle_file(str(question)), message="", history=[], temperature=0.0, repetition_penalty=1.0,
        max_new_tokens=64, api_name="/voice_chat")
    assert "japan" in transcript.lower() and "Tokyo" in reply, (transcript, reply)
    assert Path(spoken).read_bytes()[:4] == b"RIFF" and wav_seconds(spoken) > 1.0
    assert details["models"]["voice"] == "packaged:piper-joe-us" and len(history) == 2


# --------------------------------------------------------------------------- browser tier


@pytest.fixture(scope="module")
def voice_app(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`python app.py` on the real offline defaults, serving voice chat and the three tabs it uses."""
    from servers import clean_env, start_app

    env = clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="0", ZOO_CACHE_DIR=str(model_cache_dir),
                    ZOO_PLUGINS="voice-chat,automatic-speech-recognition,conversational,text-to-speech")
    with start_app(base_env=env, log=tmp_path_factory.mktemp("voice-app") / "app.log") as server:
        yield server


@pytest.mark.browser
@pytest.mark.real
@pytest.mark.slow  # a fresh app loads the three models on the first question: about 40 s
def test_browser_spoken_question_is_answered_aloud(voice_app: Any, question: Path, silence: Path) -> None:
    from playwright.sync_api import sync_playwright

    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, PageErrors, ZooPage

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        errors = PageErrors()
        errors.attach(page)
        z = ZooPage(page, voice_app.url).open()
        panel = z.open_tab("Voice chat", f"tab-{TASK}")
        z.open_accordion(panel, "Advanced options")
        z.set_number(TASK, "temperature", 0)
        page.locator(f"#zoo-{TASK}-in-audio button[aria-label='Upload file']").click()
        z.upload(TASK, "audio", question)  # an upload sends the question at once
        reply_box = page.locator(f"#zoo-{TASK}-out-reply")
        player = page.locator(f"#zoo-{TASK}-out-audio")
        start = time.perf_counter()
        z.wait_done(panel, lambda: "Tokyo" in z.text_value(reply_box))
        answered = time.perf_counter() - start
        # The streamed reply plays in the page: the player has a source and the clip's length.
        deadline = time.perf_counter() + 15
        while True:
            state = player.evaluate("e => { const a = e.querySelector('audio');"
                                    " return a ? {src: a.src, duration: a.duration} : null }")
            if state and state["src"] and (state["duration"] or 0) > 0.5:
                break
            assert time.perf_counter() < deadline, f"the spoken reply never reached the player: {state}"
            time.sleep(0.1)
        assert "japan" in z.text_value(page.locator(f"#zoo-{TASK}-out-transcript")).lower()
        conversation = page.locator("#voice-chat-conversation")
        assert "Tokyo" in conversation.locator("[data-testid=bot]").last.inner_text()
        assert "Japan" in conversation.locator("[data-testid=user]").last.inner_text()
        print(f"\nvoice chat in the browser: answered in {answered:.1f} s; player {state}")
        z.screenshot("voice-chat")
        # A silent recording: the error says what to do, and the conversation stays.
        upload = page.locator(f"#zoo-{TASK}-in-audio button[aria-label='Upload file']")
        if upload.count() and upload.is_visible():  # the used recording was cleared: the box is empty again
            upload.click()
        z.upload(TASK, "audio", silence)
        message = z.wait_error()
        assert "I heard nothing; speak closer to the microphone or upload a recording" in message, message
        assert conversation.locator("[data-testid=bot]").count() == 1
        assert "Tokyo" in conversation.locator("[data-testid=bot]").last.inner_text()
        # The tab's spoken example (espeak-ng) loads into the recording box; Send asks it.
        for close in page.locator(".toast-close").all():  # the error above is read: dismiss it
            close.click()
        page.locator(".toast-body.error").first.wait_for(state="detached", timeout=10_000)
        rows = z.example_rows(panel)
        assert rows.count() == 4, rows.count()  # three typed examples, then the spoken one
        z.load_example(panel, 3, media=[z.field(TASK, "audio")])
        page.locator(f"#zoo-{TASK}-run").click()
        bot = conversation.locator("[data-testid=bot]")
        # Not wait_done: the components still show the refused turn's error status until this turn ends.
        deadline = time.perf_counter() + 60
        while not (bot.count() == 2 and "Tokyo" in bot.last.inner_text() and not z.busy(panel)):
            assert not z.error_toasts(), z.error_toasts()
            assert time.perf_counter() < deadline, "the spoken example got no answer"
            time.sleep(0.1)
        assert "Japan" in conversation.locator("[data-testid=user]").last.inner_text()
        browser.close()
    assert not errors.entries, "\n".join(errors.entries)


@pytest.mark.browser
@pytest.mark.real
def test_browser_microphone_recording_is_sent_when_it_stops(voice_app: Any, tmp_path: Path) -> None:
    """Chromium's fake microphone plays a spoken question (then silence); stopping the recording sends it."""
    import numpy as np
    from playwright.sync_api import sync_playwright

    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, PageErrors, ZooPage

    spoken = zoo_audio.decode(synthesise("What is the capital of Japan?", tmp_path / "q.wav"), sample_rate=48000)
    mic = zoo_audio.write_wav(tmp_path / "mic.wav", np.concatenate([spoken, np.zeros(48000 * 4, np.float32)]), 48000)
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={mic}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + flags)
        page = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"]).new_page()
        page.set_default_timeout(30_000)
        errors = PageErrors()
        errors.attach(page)
        z = ZooPage(page, voice_app.url).open()
        panel = z.open_tab("Voice chat", f"tab-{TASK}")
        z.open_accordion(panel, "Advanced options")
        z.set_number(TASK, "temperature", 0)
        box = page.locator(f"#zoo-{TASK}-in-audio")
        box.locator("button.record-button").click()
        time.sleep(len(spoken) / 48000 + 1.0)  # the question and a moment of silence
        box.locator("button.stop-button").first.click()
        reply = page.locator(f"#zoo-{TASK}-out-reply")
        z.wait_done(panel, lambda: "Tokyo" in z.text_value(reply))
        assert "japan" in z.text_value(page.locator(f"#zoo-{TASK}-out-transcript")).lower()
        assert page.locator("#voice-chat-conversation [data-testid=user]").count() == 1  # sent once
        browser.close()
    assert not errors.entries, "\n".join(errors.entries)

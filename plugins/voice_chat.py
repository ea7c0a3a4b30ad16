"""Voice chat: speak (or type) to the chat model and hear its answer, sentence by sentence.

A composite plugin (Plugin API 2): it has no model of its own and calls three other tabs through
its context, each on the model picked for its part:

1. `transcriber` (speech recognition) writes down what was said; a typed message skips it;
2. `chat` (the chat tab) answers with the conversation so far, streamed token by token;
3. `voice` (text to speech) speaks the reply one sentence at a time, as soon as each sentence is
   complete, on a thread of its own, so the first sentence plays while the model still writes the next.

Every result carries the transcript, the reply so far, the history (OpenAI-style messages, as the
chat tab takes them) and details with the timings: time to the first reply word and to the first
audio, both counted from the request's start, which is the end of speech (the recording is complete
when it is sent). The final result's `audio` is the whole spoken reply as one WAV, for gradio_client
and the CLI; the tab plays the sentences as they come (a streaming, autoplaying player), and
`sentence_audio` (not a declared output) lists each sentence's WAV file.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from plugins.chat import check_history
from zoo.errors import InvalidInput
from zoo.generation import sampling_options
from zoo.plugin import Audio, Float, Json, Limits, Plugin, RunContext, Text

DEFAULT_SYSTEM_PROMPT = "You are a helpful voice assistant. Answer in one or two short sentences."
#: The longest question a voice chat takes (the operator's ZOO_MAX_AUDIO_SECONDS may lower it): a
#: spoken question, not a lecture; the Speech recognition tab takes long recordings.
MAX_QUESTION_SECONDS = 60.0
NO_SPEECH_FIX = "I heard nothing; speak closer to the microphone or upload a recording"
SENTENCE_PAUSE = 0.2  # seconds of silence between two spoken sentences, as the text-to-speech tab leaves
PAUSE_AFTER = 0.25  # the tab sends the pause after a sentence this many seconds after the sentence (see build_ui)
#: A sentence this many words long without an end is spoken at its last comma (or cut, at twice as many),
#: so a rambling first sentence does not hold back the first audio.
MAX_CLAUSE_WORDS = 24
MIN_CLAUSE_WORDS = 6
#: Speech must be louder than this (peak of 20 ms frames, full scale 1.0) for at least MIN_VOICED_SECONDS.
SPEECH_LEVEL = 0.02
MIN_VOICED_SECONDS = 0.15
# Words that end with a period but rarely end a sentence.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "e.g", "i.e", "approx", "no",
                           "fig", "mt", "ft", "u.s", "u.k", "a.m", "p.m"})
# What speech recognition writes for audio with no words in it.
_NOT_WORDS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪+")


class VoiceChat(Plugin):
    """Speech recognition, then chat with the conversation so far, then the reply spoken sentence by sentence."""

    api_version = 2
    task = "voice-chat"
    title = "Voice chat"
    group = "audio"
    description = ("Speak to the chat model and hear its answer. Record or upload a question (or type one): speech "
                   "recognition writes it down, the chat model answers with the conversation so far, and a voice "
                   "reads the answer aloud sentence by sentence, starting before the answer is complete.")
    order = 12
    models = None
    uses = {"transcriber": "automatic-speech-recognition", "chat": "conversational", "voice": "text-to-speech"}
    api_name = "voice_chat"
    inputs = (
        Audio("audio", required=False, label="Spoken question", info="Record or upload; leave empty to type instead"),
        Text("message", required=False, lines=1, placeholder="…or type a message and press Enter",
             info="Used when there is no recording (it skips speech recognition)"),
        Json("history", default=[], info='OpenAI-style messages: [{"role": "user", "content": "..."}, ...]'),
        Text("system_prompt", DEFAULT_SYSTEM_PROMPT, lines=2, required=False,
             info="How the assistant should behave; short answers are quicker to hear"),
    )
    options = (
        *sampling_options(max_new_tokens=128, info={"max_new_tokens": "Upper bound on the reply's tokens"}),
        Float("speed", 1.0, 0.5, 2.0, step=0.05, label="Speaking speed", info="1 = the voice's natural pace"),
    )
    outputs = (
        Text("transcript", label="You said", lines=2),
        Text("reply", label="Reply", lines=4),
        Audio("audio", label="Spoken reply", autoplay=True),
        Json("history", label="History"),
        Json("details", label="Details"),
    )
    examples = (
        {"message": "What is the capital of Japan?"},
        {"message": "How many legs does a spider have?"},
        {"message": "Give me two tips for a good night's sleep."},
        {"message": "What did I just ask you?", "temperature": 0.0,
         "history": [{"role": "user", "content": "What is the opposite of hot?"},
                     {"role": "assistant", "content": "The opposite of hot is cold."}]},
    )
    ui_strings = ("Conversation", "Record a question, upload one, or type below.", "Send", "Clear conversation",
                  "Details (timings from the end of speech, models)", "Models for each step")
    translations = {
        "zh-CN": {
            "Conversation": "对话内容",
            "Record a question, upload one, or type below.": "录一个问题、上传一段录音，或在下方输入。",
            "Send": "发送",
            "Clear conversation": "清空对话",
            "Details (timings from the end of speech, models)": "详情（从说完话算起的用时、所用模型）",
            "Models for each step": "各步骤的模型",
            "Voice chat": "语音对话",
            ("Speak to the chat model and hear its answer. Record or upload a question (or type one): speech "
             "recognition writes it down, the chat model answers with the conversation so far, and a voice reads "
             "the answer aloud sentence by sentence, starting before the answer is complete."):
                ("对聊天模型说话并听它回答。录音或上传一个问题（也可以直接输入）：语音识别将其转写成文字，"
                 "聊天模型结合目前为止的对话作答，再由一个声音逐句朗读回答，回答尚未生成完就开始朗读。"),
            "Spoken question": "语音提问",
            "Record or upload; leave empty to type instead": "录音或上传；留空则改为输入文字",
            "Message": "消息",
            "Used when there is no recording (it skips speech recognition)": "没有录音时使用（跳过语音识别）",
            "…or type a message and press Enter": "…或输入消息后按回车发送",
            "History": "对话历史",
            'OpenAI-style messages: [{"role": "user", "content": "..."}, ...]':
                'OpenAI 格式的消息：[{"role": "user", "content": "..."}, ...]',
            "System prompt": "系统提示词",
            "How the assistant should behave; short answers are quicker to hear":
                "助手应如何表现；回答越短，越快听到",
            "Upper bound on the reply's tokens": "回复的 token 数上限",
            "Speaking speed": "语速",
            "1 = the voice's natural pace": "1 = 该声音的自然语速",
            "You said": "你说的是",
            "Reply": "回复",
            "Spoken reply": "语音回复",
            "Details": "详细信息",
        },
    }

    # ------------------------------------------------------------------ checks
    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """The conversation is valid; a recording or a message (not both, not neither); the recording not too long."""
        values["history"] = check_history(values.get("history"), limits)
        recording, message = values.get("audio"), values.get("message") or ""
        if recording is None and not message.strip():
            raise InvalidInput("message", message, "is empty and there is no recording either",
                               "record or upload a spoken question, or type a message")
        if recording is not None and message.strip():
            raise InvalidInput("message", message, "was sent together with a recording; a turn is one or the other",
                               "send the recording with an empty message, or the message without a recording")
        if recording is not None:
            from zoo import audio

            info = audio.probe(recording)
            cap = min(MAX_QUESTION_SECONDS, limits.max_audio_seconds)
            if info.duration is not None and info.duration > cap:
                fix = ("ask a shorter question; the Speech recognition tab takes long recordings"
                       if cap < limits.max_audio_seconds else
                       "trim the recording, or have the operator raise ZOO_MAX_AUDIO_SECONDS")
                raise InvalidInput("audio", Path(recording).name,
                                   f"must be at most {cap:g} seconds long for a voice chat, and it is "
                                   f"{info.duration:.1f} s long", fix)

    # ------------------------------------------------------------------ the turn
    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        start = time.perf_counter()
        since = lambda: round(time.perf_counter() - start, 3)  # noqa: E731
        history = values["history"]
        timings: dict[str, float] = {}
        details: dict[str, Any] = {"input": "speech" if values["audio"] else "text", "timings": timings,
                                   "models": ctx.models_used, "sentences": []}
        if values["audio"]:
            details["question_seconds"] = check_speech(values["audio"], ctx)
            heard = ctx.run("transcriber", audio=values["audio"], timestamps=False)
            transcript = spoken_words(heard.get("text", ""))
            timings["recognition_s"] = since()
            if not transcript:
                raise InvalidInput("audio", Path(values["audio"]).name, "holds no words that speech recognition "
                                   "could make out", NO_SPEECH_FIX)
        else:
            transcript = values["message"].strip()
        asked = [*history, {"role": "user", "content": transcript}]
        state: dict[str, Any] = {"transcript": transcript, "reply": "", "audio": None,
                                 "history": [*asked, {"role": "assistant", "content": ""}], "details": details,
                                 "sentence_audio": []}
        yield _copy(state)

        speaker = Speaker(ctx, speed=values["speed"], seed=values["seed"])
        splitter = SentenceSplitter()
        try:
            chat = {k: values[k] for k in ("system_prompt", "max_new_tokens", "temperature", "top_p", "top_k",
                                           "repetition_penalty", "seed")}
            for out in ctx.stream("chat", message=transcript, history=history, **chat):
                state["reply"], state["history"] = out["reply"], out["history"]
                if "first_reply_word_s" not in timings and out["reply"].strip():
                    timings["first_reply_word_s"] = since()
                for sentence in splitter.feed(out["reply"]):
                    speaker.say(sentence)
                self._collect(speaker, state, since, block=False)
                yield _copy(state)
            timings["reply_s"] = since()
            for sentence in splitter.finish(state["reply"]):
                speaker.say(sentence)
            speaker.close()
            while not speaker.ended:  # the last sentences are still being spoken
                ctx.raise_if_cancelled()
                self._collect(speaker, state, since, block=True)
                yield _copy(state)  # a tenth of a second apart at most: the tab's player keeps its pace
            if state["sentence_audio"]:
                state["audio"] = join_wavs(state["sentence_audio"], ctx)
                details["reply_audio_seconds"] = wav_seconds(state["audio"])
            else:
                details["note"] = ("The reply has no words to speak." if state["reply"].strip()
                                   else "The reply is empty.")
            timings["total_s"] = since()
            details["models"] = dict(ctx.models_used)
            yield _copy(state)
        finally:
            speaker.stop()

    @staticmethod
    def _collect(speaker: "Speaker", state: dict[str, Any], since: Any, block: bool) -> bool:
        """Take the sentences the voice has finished into `state`; True when there were any."""
        got = False
        for kind, text, path in speaker.finished(block):
            if kind == "audio":
                timings = state["details"]["timings"]
                timings.setdefault("first_audio_s", since())
                state["sentence_audio"].append(path)
                state["details"]["sentences"].append({"text": text, "ready_s": since(),
                                                      "seconds": round(wav_seconds(path), 3)})
            else:  # nothing the voice could pronounce in it: noted, not spoken
                state["details"]["sentences"].append({"text": text, "skipped": path})
            got = True
        return got

    # ------------------------------------------------------------------ UI
    def build_ui(self, ui: Any) -> bool:
        """A voice tab: the conversation, a microphone/upload box that sends when a recording ends, a message
        box, Send/Stop/Clear, a player that starts with the first spoken sentence, the part pickers."""
        import inspect

        import gradio as gr

        from plugins.chat import plain_messages
        from zoo.ui import RAW_INPUTS, STREAM_INTERVAL, output_dir

        zoo, task = ui.zoo, self.task
        fields = {f.name: f for f in self.fields()}
        option_names = [f.name for f in self.options]
        part_names = [f.name for f in self.part_fields()]

        ui.header()
        t = ui.text  # the page's language (ui_strings, translations)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label=t("Conversation"), height=380, buttons=["copy", "copy_all"],
                                     feedback_options=None, elem_id="voice-chat-conversation",
                                     placeholder=t("Record a question, upload one, or type below."))
                with gr.Row(equal_height=True):
                    message = gr.Textbox(label="Message", show_label=False, placeholder=t(fields["message"].placeholder),
                                         lines=1, max_lines=6, scale=6, elem_id=f"zoo-{task}-in-message")
                    send_btn = gr.Button(t("Send"), variant="primary", scale=1, min_width=80, elem_id=f"zoo-{task}-run")
                    stop_btn = gr.Button(t("Stop"), variant="stop", scale=1, min_width=80, elem_id=f"zoo-{task}-stop")
                recording = gr.Audio(sources=["microphone", "upload"], type="filepath", label=t(fields["audio"].title),
                                     elem_id=f"zoo-{task}-in-audio")
                clear_btn = gr.Button(t("Clear conversation"), size="sm", elem_id=f"zoo-{task}-clear")
            with gr.Column(scale=2):
                # The tab plays the reply as it is spoken: each sentence's WAV goes to this streaming player.
                player = gr.Audio(label=t("Spoken reply"), streaming=True, autoplay=True, interactive=False,
                                  elem_id=f"zoo-{task}-out-audio")
                transcript = gr.Textbox(label=t("You said"), lines=2, interactive=False, buttons=["copy"],
                                        elem_id=f"zoo-{task}-out-transcript")
                reply = gr.Textbox(label=t("Reply"), lines=4, interactive=False, buttons=["copy"],
                                   elem_id=f"zoo-{task}-out-reply")
                details = gr.JSON(label=t("Details (timings from the end of speech, models)"),
                                  elem_id=f"zoo-{task}-out-details")
        with gr.Accordion(t("Models for each step"), open=False):
            pickers = ui.pickers()
        folded = ui.options_accordion([fields["system_prompt"], *self.options])
        system_prompt, options = folded["system_prompt"], [folded[n] for n in option_names]
        # The endpoint /voice_chat returns the whole reply as one WAV: this hidden player carries it.
        api_audio = gr.Audio(type="filepath", visible=False, label="Spoken reply (whole)",
                             elem_id=f"zoo-{task}-api-audio")
        api_history = gr.JSON(value=[], visible=False, label="History")
        api_trigger = gr.Button(visible=False)
        spoken = spoken_example(self.examples[0]["message"])
        rows = [{"message": ex["message"]} for ex in self.examples if "history" not in ex]
        ui.examples(rows + ([{"message": "", "audio": spoken}] if spoken else []), names=["message", "audio"],
                    components={"message": message, "audio": recording})

        ui.inputs = {"audio": recording, "message": message, "history": api_history, "system_prompt": system_prompt,
                     **dict(zip(option_names, options)), **pickers}
        ui.outputs = [transcript, reply, api_audio, api_history, details]
        ui.api_endpoint(api_trigger.click)
        limit, group = zoo.settings.max_concurrency_per_model, f"model-{task}"
        pending = gr.State(None)

        def stage(audio: Any, text: str, chat: list[dict]) -> tuple[Any, ...]:
            """Show a typed message at once and clear the box; the turn itself runs in the next step."""
            history = plain_messages(chat)
            shown = [*history, {"role": "user", "content": text}] if text.strip() and not audio else history
            return "", shown, None, {"audio": audio, "message": text, "history": history}

        def respond(turn: dict | None, system: str, *rest: Any, progress: Any = gr.Progress()) -> Iterator[tuple]:
            """Stream the turn: transcript, the reply into the conversation, each spoken sentence to the player.
            On an error the conversation goes back to what it was, and a typed message back to its box."""
            if not turn:
                yield (gr.skip(),) * 7
                return
            opts, models = rest[:len(option_names)], rest[len(option_names):]
            values = {"audio": turn["audio"], "message": turn["message"], "history": turn["history"],
                      "system_prompt": system, **dict(zip(option_names, opts)), **dict(zip(part_names, models))}
            folder = output_dir()
            folder.mkdir(parents=True, exist_ok=True)
            started = []  # progress shows until the reply starts; after that the conversation itself moves

            def on_progress(fraction: float | None, desc: str) -> None:
                if not started:
                    progress(fraction if fraction is not None else 0, desc=desc)

            ctx = RunContext(limits=zoo.limits, on_progress=on_progress, temp_dir=str(folder))
            played, last, result = 0, 0.0, None
            pause_due: float | None = None  # when to send the pause after the sentence just sent

            def view(result: dict, chunk: Any = None) -> tuple:
                return (result["history"], result["transcript"], result["reply"],
                        chunk if chunk is not None else gr.skip(), result["details"], gr.skip(),
                        gr.skip())

            try:
                for result in zoo.stream(task, values, ctx):
                    started.append(True)
                    chunks = result["sentence_audio"]
                    while played < len(chunks):  # a sentence is ready: to the player at once, one per update
                        if pause_due is not None:  # the pause between two sentences, if not sent yet
                            yield view(result, pause_like(chunks[played - 1], folder))
                        yield view(result, chunks[played])
                        played, last, pause_due = played + 1, time.monotonic(), time.monotonic() + PAUSE_AFTER
                    if pause_due is not None and time.monotonic() >= pause_due:
                        # Gradio's player gets a chunk's audio as its encoder has it ready when the chunk is
                        # handed over (little of it, at once), the rest with the next chunk: the pause
                        # between sentences is that next chunk, so each sentence plays without waiting
                        # for the one after it.
                        yield view(result, pause_like(chunks[played - 1], folder))
                        pause_due, last = None, time.monotonic()
                    elif time.monotonic() - last >= STREAM_INTERVAL:
                        yield view(result)
                        last = time.monotonic()
                if result is not None:
                    yield (*view(result)[:6], None)  # done: the recording is used, the box is free for the next
            except Exception:
                if not ctx.cancelled:  # undo the staged turn: the conversation is what it was
                    yield (turn["history"], gr.skip(), gr.skip(), gr.skip(), gr.skip(), turn["message"], gr.skip())
                raise
            finally:
                ctx.cancel_event.set()  # Stop, disconnect or done: the reply and the voice stop

        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for n in ("turn", "system_prompt", *option_names, *part_names)]
        params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress()))
        respond.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        respond_guarded = ui.guard(respond)

        run_inputs = [pending, system_prompt, *options, *(pickers[n] for n in part_names)]
        run_outputs = [chatbot, transcript, reply, player, details, message, recording]
        private = dict(api_visibility="private")
        streamed = dict(concurrency_limit=limit, concurrency_id=group, **private, **RAW_INPUTS)
        events = []
        # A finished recording or an upload sends at once: speak, and hear the answer.
        for trigger in (send_btn.click, message.submit, recording.stop_recording, recording.upload):
            events.append(trigger(stage, [recording, message, chatbot], [message, chatbot, player, pending],
                                  queue=False, **private, **RAW_INPUTS)
                          .then(respond_guarded, run_inputs, run_outputs, **streamed))
        stop_btn.click(None, None, None, cancels=events, queue=False, **private)
        clear_btn.click(lambda: ([], "", "", "", None, None), None, [chatbot, message, transcript, reply, details,
                                                                   pending], cancels=events, queue=False, **private)
        chatbot.clear(lambda: None, None, [pending], cancels=events, queue=False, **private)

        ui.api_help({"audio": "question.wav", "message": "", "history": [], "system_prompt": DEFAULT_SYSTEM_PROMPT})
        return True


# --------------------------------------------------------------------------- steps


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot to yield: the lists and details are copied, so later updates do not change what was sent."""
    details = dict(state["details"])
    details["timings"] = dict(details["timings"])
    details["models"] = dict(details["models"])
    details["sentences"] = [dict(s) for s in details["sentences"]]
    return {**state, "history": [dict(m) for m in state["history"]], "details": details,
            "sentence_audio": list(state["sentence_audio"])}


def pause_like(wav: str, folder: Path) -> str:
    """SENTENCE_PAUSE seconds of silence in the format of `wav` (rate, channels, width), written once per format."""
    import wave

    with wave.open(str(wav)) as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
    path = folder / "voice-chat-pauses" / f"pause-{rate}-{channels}-{width}.wav"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.stem}-{threading.get_ident()}.wav")
        with wave.open(str(staging), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(width)
            out.setframerate(rate)
            out.writeframes(b"\x00" * (int(SENTENCE_PAUSE * rate) * channels * width))
        staging.replace(path)
    return str(path)


def check_speech(path: str, ctx: RunContext) -> float:
    """The recording's length in seconds; InvalidInput when nothing in it is loud enough to be speech.

    Speech recognition writes something for silence ("you", "[BLANK_AUDIO]"); a level check first
    tells an empty or near-silent recording apart, whatever the model.
    """
    import numpy as np

    from zoo import audio

    ctx.progress(None, "Listening")
    samples = audio.decode(path, max_seconds=min(MAX_QUESTION_SECONDS, ctx.limits.max_audio_seconds))
    frame = audio.SAMPLE_RATE // 50
    n = len(samples) // frame
    peaks = np.abs(samples[:n * frame]).reshape(n, frame).max(axis=1) if n else np.zeros(0)
    voiced = float((peaks > SPEECH_LEVEL).sum()) * frame / audio.SAMPLE_RATE
    if voiced < MIN_VOICED_SECONDS:
        level = float(np.abs(samples).max()) if samples.size else 0.0
        raise InvalidInput("audio", Path(path).name, f"is silent or nearly so (its loudest moment is {level:.3f} of "
                           "full scale)", NO_SPEECH_FIX)
    return round(len(samples) / audio.SAMPLE_RATE, 2)


def spoken_words(text: str) -> str:
    """A transcript without the tags speech recognition writes for sounds that are not words."""
    text = " ".join(_NOT_WORDS.sub(" ", text or "").split())
    return text if re.search(r"\w", text) else ""


def speakable(sentence: str) -> str:
    """A reply sentence as it should be said: markdown marks, list bullets and link targets left out."""
    s = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", sentence)  # [text](url) -> text
    s = re.sub(r"(?m)^\s*(?:[-*+•]|#{1,6}|\d{1,2}[.)])\s+", "", s)  # bullets, headings, list numbers
    s = re.sub(r"[*_`#~|>]+", " ", s)
    s = " ".join(s.split())
    return s if re.search(r"\w", s) else ""


class SentenceSplitter:
    """Cuts a growing reply into sentences as they complete.

    A sentence ends at . ! ? (or …) followed by a space, or at a line break. "Dr. Smith", "U.S. law",
    "3.5" and a list's "1. " do not end one. A sentence that runs past MAX_CLAUSE_WORDS words is cut
    at its last comma, colon or semicolon (or, past twice as many, at a space), so that a long first
    sentence is not a long wait for the first audio. `feed` takes the whole reply so far and returns
    the sentences it newly completes; `finish` returns the rest once the reply is complete.
    """

    _END = re.compile(r"[.!?…]+[\"')\]»”’]*(?=\s)|\n+")

    def __init__(self) -> None:
        self.done = 0  # characters of the reply already handed out

    def feed(self, text: str) -> list[str]:
        out: list[str] = []
        while True:
            rest = text[self.done:]
            cut = self._next_end(rest)
            if cut is None:
                cut = self._clause_cut(rest)
            if cut is None:
                return out
            sentence = rest[:cut].strip()
            self.done += cut
            if speakable(sentence):
                out.append(sentence)

    def finish(self, text: str) -> list[str]:
        out = self.feed(text)
        rest = text[self.done:].strip()
        self.done = len(text)
        if speakable(rest):
            out.append(rest)
        return out

    def _next_end(self, rest: str) -> int | None:
        for m in self._END.finditer(rest):
            if m.group().startswith("\n"):
                if rest[:m.start()].strip():
                    return m.end()
                continue
            if m.group() == "." and not self._ends_sentence(rest[:m.start()]):
                continue
            return m.end()
        return None

    @staticmethod
    def _ends_sentence(before: str) -> bool:
        """Whether a single period after `before` ends a sentence (not an abbreviation, initial or list number)."""
        word = re.search(r"([\w.]+)$", before)
        if word is None:
            return True
        token = word.group(1)
        if token.lower() in ABBREVIATIONS or re.fullmatch(r"[A-Za-z]", token):
            return False
        line = before.rsplit("\n", 1)[-1]
        return not (token.isdigit() and line.strip() == token)  # "1." opening a line is a list number

    @staticmethod
    def _clause_cut(rest: str) -> int | None:
        words = list(re.finditer(r"\S+", rest))
        if len(words) <= MAX_CLAUSE_WORDS:
            return None
        # A word is complete when something follows it; the last one may still grow.
        complete = words[:-1]
        for w in reversed(complete[MIN_CLAUSE_WORDS - 1:]):
            if w.group()[-1] in ",;:":
                return w.end()
        if len(complete) >= 2 * MAX_CLAUSE_WORDS:
            return complete[2 * MAX_CLAUSE_WORDS - 1].end()
        return None


class Speaker:
    """The `voice` part on a thread of its own: sentences in, in order; their WAV files out as they are ready.

    The chat model keeps writing while a sentence is spoken (its worker runs only a couple of tokens
    ahead of whoever reads it, so speaking inline would stall the reply).
    """

    def __init__(self, ctx: RunContext, speed: float, seed: int):
        self.ctx, self.speed, self.seed = ctx, speed, seed
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.ended = False
        self._stop = threading.Event()
        self._started = False

    def say(self, sentence: str) -> None:
        if not self._started:  # no thread for a reply with nothing to say
            self._started = True
            self.ctx.start_worker(self._work, "zoo-voice-chat-speaker")
        self.todo.put(sentence)

    def close(self) -> None:
        """No more sentences: the thread ends after the last one."""
        if self._started:
            self.todo.put(None)
        else:
            self.ended = True

    def stop(self) -> None:
        """Stop now (the turn ended, was stopped or failed): sentences not yet spoken are dropped."""
        self._stop.set()
        self.todo.put(None)

    def finished(self, block: bool) -> list[tuple[str, str, str]]:
        """(kind, sentence, path or reason) of the sentences done since the last call; re-raises the voice's error.

        With `block`, waits up to a tenth of a second for the next one.
        """
        out: list[tuple[str, str, str]] = []
        while not self.ended:
            try:
                item = self.done.get(timeout=0.1) if block and not out else self.done.get_nowait()
            except queue.Empty:
                break
            if item[0] == "end":
                self.ended = True
            elif item[0] == "error":
                self.ended = True
                raise item[1]
            else:
                out.append(item)
        return out

    def _work(self) -> None:
        try:
            while True:
                sentence = self.todo.get()
                if sentence is None or self._stop.is_set() or self.ctx.cancelled:
                    break
                try:
                    said = self.ctx.run("voice", text=speakable(sentence), speed=self.speed, seed=self.seed)
                except InvalidInput as exc:
                    if exc.name != "text":
                        raise
                    self.done.put(("skipped", sentence, exc.message))
                    continue
                self.done.put(("audio", sentence, said["audio"]))
        except BaseException as exc:  # to the turn, which raises it where the caller sees it
            self.done.put(("error", exc))
        finally:
            self.done.put(("end",))


def wav_seconds(path: str) -> float:
    """The length of a WAV file in seconds."""
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def join_wavs(paths: list[str], ctx: RunContext) -> str:
    """The sentences' WAV files as one, SENTENCE_PAUSE apart; a new file in a fresh folder of ctx.temp_dir."""
    import tempfile
    import wave

    folder = Path(tempfile.mkdtemp(prefix="zoo-voice-chat-", dir=ctx.temp_dir))
    target = folder / "reply.wav"
    params, frames = None, []
    for path in paths:
        with wave.open(str(path)) as w:
            p = (w.getnchannels(), w.getsampwidth(), w.getframerate())
            if params is not None and p != params:
                return _join_resampled(paths, target, params[2])
            params = p
            frames.append(w.readframes(w.getnframes()))
    assert params is not None
    channels, width, rate = params
    silence = b"\x00" * (int(SENTENCE_PAUSE * rate) * channels * width)
    with wave.open(str(target), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(silence.join(frames))
    return str(target)


def _join_resampled(paths: list[str], target: Path, rate: int) -> str:
    """Sentences in different formats (voices swapped mid-reply): decoded to one rate, then joined."""
    import numpy as np

    from zoo import audio

    silence = np.zeros(int(SENTENCE_PAUSE * rate), dtype=np.float32)
    parts = []
    for path in paths:
        parts += [audio.decode(path, sample_rate=rate), silence]
    audio.write_wav(target, np.concatenate(parts[:-1]), rate)
    return str(target)


def spoken_example(text: str) -> str | None:
    """A spoken question for the tab's examples, made once with espeak-ng; None without it."""
    import os
    import shutil
    import subprocess

    from zoo.ui import sample_dir

    path = sample_dir() / "voice-chat-question.wav"
    if path.is_file():
        return str(path)
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.stem}-{os.getpid()}.wav")  # several servers may share the folder
    try:
        subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(staging), text], check=True,
                       capture_output=True, timeout=30)
        os.replace(staging, path)
    except (OSError, subprocess.SubprocessError):
        return None
    return str(path)

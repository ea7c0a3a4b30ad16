"""Chat: a multi-turn conversation with an instruct model, streamed token by token.

The conversation travels with each request as OpenAI-style messages
(`[{"role": "user", "content": "..."}, ...]`), so the server keeps no per-user
state and any client can continue a chat. The model is the one text generation
uses: same references, same loader kind, so the shared cache holds one copy.
When a long conversation outgrows the model's context, the oldest turns are left
out of the prompt (never the system prompt or the new message); the returned
history still holds every message.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from plugins._lm import CAUSAL_LM, LM_MODELS
from zoo.errors import InvalidInput
from zoo.generation import GenerationParams, GenerationStats, LanguageModel, sampling_options
from zoo.plugin import Json, Limits, Plugin, RunContext, Text

if TYPE_CHECKING:
    from zoo.models.manager import Loaded

ROLES = ("user", "assistant", "system")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
#: A whole conversation may hold this many times the text limit of one input: far more than a
#: small model's context, so trimming (not this cap) decides what the model sees.
HISTORY_CHAR_FACTOR = 20

Message = dict[str, str]


def check_history(value: Any, limits: Limits | None = None) -> list[Message]:
    """A validated copy of a conversation: a list of {"role", "content"} dicts with known roles and text."""
    limits = limits or Limits()
    if value is None or value == "":
        return []
    if isinstance(value, str):  # the CLI and curl users send JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInput("history", value, "must be a JSON list of messages",
                               'send e.g. [{"role": "user", "content": "Hi"}], or [] to start a chat') from None
    if not isinstance(value, (list, tuple)):
        raise InvalidInput("history", value, "must be a list of messages",
                           'send e.g. [{"role": "user", "content": "Hi"}], or [] to start a chat')
    messages: list[Message] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise InvalidInput(f"history[{i}]", item, 'must be a dict with "role" and "content" keys',
                               'write each message as {"role": "user", "content": "..."}')
        role, content = item["role"], item["content"]
        if role not in ROLES:
            raise InvalidInput(f"history[{i}].role", role, f"must be one of {', '.join(ROLES)}",
                               "use OpenAI-style roles")
        if not isinstance(content, str):
            raise InvalidInput(f"history[{i}].content", content, "must be a string",
                               "send the message text as a plain string")
        # The same rules as any text input: length cap, and no lone surrogates to crash the tokenizer.
        content = Text(f"history[{i}].content", required=False).check(content, limits)
        messages.append({"role": role, "content": content})
    total = sum(len(m["content"]) for m in messages)
    if total > HISTORY_CHAR_FACTOR * limits.max_text_chars:
        raise InvalidInput("history", f"<{len(messages)} messages, {total} characters>",
                           f"must hold at most {HISTORY_CHAR_FACTOR * limits.max_text_chars} characters in all",
                           "drop the oldest messages (the model only sees the recent ones anyway)")
    return messages


def fit_to_context(lm: LanguageModel, system: Sequence[Message], history: Sequence[Message], message: Message,
                   budget: int) -> list[Message]:
    """The prompt's messages: system + as many recent history turns as fit in `budget` tokens + the new message.

    Whole turns go (a user message with the replies after it), so the kept part
    never opens with an orphaned assistant reply.
    """

    def tokens(messages: Sequence[Message]) -> int:
        return lm.count_tokens(lm.chat_prompt(list(messages)))

    fixed = [*system, message]
    if tokens(fixed) > budget:
        raise InvalidInput("message", message["content"],
                           f"does not fit in the model's context ({budget} tokens for the prompt, with the "
                           "system prompt)", "shorten the message or the system prompt, or lower max_new_tokens")
    if tokens([*system, *history, message]) <= budget:  # the usual case: everything fits
        return [*system, *history, message]
    turns = _turns(history)
    # Binary search for the oldest turn to keep: fewer turns never means more tokens,
    # so log2(turns) renders find it, where dropping one turn at a time would take one render each.
    lo, hi = 0, len(turns)  # turns[hi:] (nothing) always fits
    while lo < hi:
        mid = (lo + hi) // 2
        if tokens([*system, *_flat(turns[mid:]), message]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return [*system, *_flat(turns[lo:]), message]


def _turns(history: Sequence[Message]) -> list[list[Message]]:
    """Group messages into turns that each start at a user message."""
    turns: list[list[Message]] = []
    for m in history:
        if m["role"] == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


def _flat(turns: Sequence[Sequence[Message]]) -> list[Message]:
    return [m for turn in turns for m in turn]


class Chat(Plugin):
    """Multi-turn chat with a system prompt, streamed, sharing its model with text generation."""

    api_version = 2
    task = "conversational"
    title = "Chat"
    group = "text"
    description = ("Talk with an instruct model. The whole conversation is sent with every message, so the model "
                   "remembers earlier turns (the oldest ones are dropped when it outgrows the model's context).")
    order = 11
    model_kind = CAUSAL_LM
    models = LM_MODELS  # the same references as text generation: one loaded copy serves both tabs
    api_name = "chat"
    openai = ("chat/completions",)  # served under /v1 too (zoo/openai_api.py)
    inputs = (
        Text("message", lines=2, placeholder="Type a message and press Enter…"),
        Json("history", default=[], info='OpenAI-style messages: [{"role": "user", "content": "..."}, ...]'),
        Text("system_prompt", DEFAULT_SYSTEM_PROMPT, lines=2, required=False,
             info="How the assistant should behave; a system message at the start of the history overrides it"),
    )
    options = sampling_options(max_new_tokens=256, info={"max_new_tokens": "Upper bound on the reply's tokens"})
    outputs = (
        Text("reply", label="Reply", lines=6),
        Json("history", label="History"),
    )
    examples = (
        {"message": "Hi! My name is Ada. What can you do?"},
        {"message": "What is my name?", "temperature": 0.0,
         "history": [{"role": "user", "content": "My name is Ada."},
                     {"role": "assistant", "content": "Nice to meet you, Ada! How can I help you today?"}]},
        {"message": "Give me three tips for writing clear emails.", "max_new_tokens": 200},
        {"message": "Tell me about the moon.", "system_prompt": "You are a pirate. Answer in pirate speak."},
    )
    ui_strings = ("Conversation", "Say hello. The model sees the whole conversation each turn.", "Send", "Retry",
                  "Undo", "Clear")
    translations = {
        "zh-CN": {
            "Conversation": "对话内容",
            "Say hello. The model sees the whole conversation each turn.": "打个招呼吧。模型每一轮都会看到整段对话。",
            "Send": "发送",
            "Retry": "重试",
            "Undo": "撤销",
            "Clear": "清空",
            "Chat": "对话",
            ("Talk with an instruct model. The whole conversation is sent with every message, so the model "
             "remembers earlier turns (the oldest ones are dropped when it outgrows the model's context)."):
                ("与指令模型对话。每条消息都会连同整段对话一起发送，"
                 "因此模型记得之前的轮次（对话超出模型上下文长度时，最早的轮次会被丢弃）。"),
            "Message": "消息",
            "Type a message and press Enter…": "输入消息后按回车发送…",
            "History": "对话历史",
            'OpenAI-style messages: [{"role": "user", "content": "..."}, ...]':
                'OpenAI 格式的消息：[{"role": "user", "content": "..."}, ...]',
            "System prompt": "系统提示词",
            "How the assistant should behave; a system message at the start of the history overrides it":
                "助手应如何表现；对话历史开头的系统消息会覆盖此设置",
            "Upper bound on the reply's tokens": "回复的 token 数上限",
            "Reply": "回复",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """Validate the conversation (a Json field checks nothing by itself)."""
        values["history"] = check_history(values.get("history"), limits)

    def prompt_messages(self, lm: LanguageModel, values: dict[str, Any]) -> list[Message]:
        """The messages the model sees: system prompt, the recent turns that fit, the new message."""
        history = list(values["history"])
        system: list[Message] = []
        while history and history[0]["role"] == "system":  # the client's own system message wins
            system.append(history.pop(0))
        if not system and values["system_prompt"].strip():
            system = [{"role": "system", "content": values["system_prompt"]}]
        budget = lm.context_length - values["max_new_tokens"]
        if budget <= 0:
            raise InvalidInput("max_new_tokens", values["max_new_tokens"],
                               f"must leave room for the prompt in the model's {lm.context_length}-token context",
                               "lower max_new_tokens")
        return fit_to_context(lm, system, history, {"role": "user", "content": values["message"]}, budget)

    def stream(self, model: Loaded[LanguageModel], values: dict[str, Any], ctx: RunContext
               ) -> Iterator[dict[str, Any]]:
        lm = model.model
        prompt = lm.chat_prompt(self.prompt_messages(lm, values))
        params = GenerationParams.from_values(values)
        before = [*values["history"], {"role": "user", "content": values["message"]}]
        reply, stats = "", GenerationStats()
        for piece in lm.stream(prompt, params, cancel=ctx.cancel_event, templated=lm.has_chat_template, stats=stats):
            reply += piece
            yield {"reply": reply, "history": [*before, {"role": "assistant", "content": reply}]}
        ctx.report_usage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.new_tokens)
        if not reply:  # stopped before the first token, or the model ended at once: still one result
            yield {"reply": "", "history": [*before, {"role": "assistant", "content": ""}]}

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        # As text generation: small models decode well over 20 tokens/s on any GPU.
        return 20 + values.get("max_new_tokens", 256) / 20

    # ------------------------------------------------------------------ UI
    def build_ui(self, ui: Any) -> bool:
        """A chat tab: conversation, message box, Send/Stop/Retry/Undo/Clear, options folded away."""
        import inspect

        import gradio as gr

        from zoo.ui import RAW_INPUTS, throttle

        zoo = ui.zoo
        fields = {f.name: f for f in self.fields()}
        option_names = [f.name for f in self.options]

        ui.header()
        t = ui.text  # the page's language (ui_strings, translations)
        chatbot = gr.Chatbot(label=t("Conversation"), height=460, buttons=["copy", "copy_all"], feedback_options=None,
                             placeholder=t("Say hello. The model sees the whole conversation each turn."),
                             elem_id="chat-conversation")
        with gr.Row(equal_height=True):
            message = gr.Textbox(show_label=False, placeholder=t(fields["message"].placeholder), lines=1, max_lines=8,
                                 scale=6, elem_id="chat-message")
            send_btn = gr.Button(t("Send"), variant="primary", scale=1, min_width=80, elem_id="chat-send")
            stop_btn = gr.Button(t("Stop"), variant="stop", scale=1, min_width=80, elem_id="chat-stop")
        with gr.Row():
            retry_btn = gr.Button(t("Retry"), size="sm", elem_id="chat-retry")
            undo_btn = gr.Button(t("Undo"), size="sm", elem_id="chat-undo")
            clear_btn = gr.Button(t("Clear"), size="sm", elem_id="chat-clear")
        model = ui.model_picker()
        folded = ui.options_accordion([fields["system_prompt"], *self.options])
        system_prompt, options = folded["system_prompt"], [folded[n] for n in option_names]
        # The API endpoint /chat takes and returns plain messages; these components only carry its values.
        api_history = gr.JSON(value=[], visible=False, label="History")
        api_reply = gr.Textbox(visible=False, label="Reply")
        api_trigger = gr.Button(visible=False)
        ui.examples([ex for ex in self.examples if "history" not in ex and "system_prompt" not in ex],
                    names=["message"], components={"message": message})

        ui.inputs = {"message": message, "history": api_history, "system_prompt": system_prompt,
                     **dict(zip(option_names, options)), "model": model}
        ui.outputs = [api_reply, api_history]
        ui.api_endpoint(api_trigger.click)
        limit, group = zoo.settings.max_concurrency_per_model, f"model-{self.task}"

        # The UI keeps the conversation in the Chatbot; a pending turn waits in a State while it streams.
        pending = gr.State(None)

        def stage(text: str, chat: list[dict]) -> tuple[Any, ...]:
            """Show the user's message at once and clear the box; the reply streams in the next step."""
            history = plain_messages(chat)
            return "", [*history, {"role": "user", "content": text}], {"message": text, "history": history}

        def stage_retry(chat: list[dict]) -> tuple[Any, ...]:
            """Drop the last reply and queue its user message again."""
            history = plain_messages(chat)
            while history and history[-1]["role"] == "assistant":
                history.pop()
            if not history or history[-1]["role"] != "user":
                return chat, None  # nothing to retry
            text = history.pop()["content"]
            return [*history, {"role": "user", "content": text}], {"message": text, "history": history}

        def respond(turn: dict | None, system: str, *rest: Any, progress: Any = gr.Progress()
                    ) -> Iterator[tuple[Any, Any]]:
            """Stream the reply into the Chatbot; on an error give the message back to the box."""
            if not turn:
                yield gr.skip(), gr.skip()
                return
            *opts, model_ref = rest
            values = {"message": turn["message"], "history": turn["history"], "system_prompt": system,
                      **dict(zip(option_names, opts)), "model": model_ref}
            ctx = RunContext(limits=zoo.limits, on_progress=lambda f, d: progress(f, desc=d))
            try:
                for result in throttle(zoo.stream(self.task, values, ctx)):
                    yield result["history"], gr.skip()
            except Exception:
                if not ctx.cancelled:
                    yield turn["history"], turn["message"]  # undo the staged turn so the user can fix and resend
                raise
            finally:
                ctx.cancel_event.set()  # Stop, disconnect or done: let generation end

        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for n in ("turn", "system_prompt", *option_names, "model")]
        params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress()))
        respond.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        respond_guarded = ui.guard(respond)

        def undo(chat: list[dict]) -> tuple[list[Message], str]:
            """Remove the last user message and its replies; put the message back in the box."""
            history = plain_messages(chat)
            while history and history[-1]["role"] == "assistant":
                history.pop()
            text = history.pop()["content"] if history and history[-1]["role"] == "user" else ""
            return history, text

        run_inputs = [pending, system_prompt, *options, model]
        private = dict(api_visibility="private")
        streamed = dict(concurrency_limit=limit, concurrency_id=group, **private, **RAW_INPUTS)
        events = []
        for trigger in (send_btn.click, message.submit):
            events.append(trigger(stage, [message, chatbot], [message, chatbot, pending], queue=False, **private)
                          .then(respond_guarded, run_inputs, [chatbot, message], **streamed))
        events.append(retry_btn.click(stage_retry, [chatbot], [chatbot, pending], queue=False, **private)
                      .then(respond_guarded, run_inputs, [chatbot, message], **streamed))
        stop_btn.click(None, None, None, cancels=events, queue=False, **private)
        undo_btn.click(undo, [chatbot], [chatbot, message], cancels=events, queue=False, **private)
        clear_btn.click(lambda: ([], "", None), None, [chatbot, message, pending], cancels=events, queue=False,
                        **private)
        # The Chatbot's own trash icon empties it; it must also end a reply still streaming into it.
        chatbot.clear(lambda: None, None, [pending], cancels=events, queue=False, **private)

        ui.api_help({"message": self.examples[0]["message"], "history": [],
                     "system_prompt": DEFAULT_SYSTEM_PROMPT})
        return True


def plain_messages(chat: Sequence[Any] | None) -> list[Message]:
    """Chatbot messages (content as a list of typed parts) back to {"role", "content": str} dicts."""
    messages: list[Message] = []
    for m in chat or []:
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        role = m.get("role") if isinstance(m, dict) else getattr(m, "role", "assistant")
        messages.append({"role": role, "content": content if isinstance(content, str) else ""})
    return messages

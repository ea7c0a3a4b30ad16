"""Ask about an image: a picture and a question in, an answer out, with a multi-turn chat about the picture.

Two ways to answer, picked by the `mode` option:

- **vision-language model**: a small VLM sees the picture and the conversation. The online default is
  SmolVLM-256M-Instruct (Idefics3, Apache-2.0), loaded through the model kind this module registers
  (`image-text-to-text`: AutoModelForImageTextToText + AutoProcessor with its chat template). Offline
  the kind's tiny random-weight Idefics3 (`tiny:image-text-to-text`) stands in: it shows the plumbing,
  and its answers are noise.
- **caption, then answer**: the captioning tab (`image-to-text`) describes the picture, and the chat
  tab (`conversational`) answers from that description. The plugin declares both as `uses`; with no
  model picked (model_for returns None) the request runs in the server and ctx.run reaches them.

`auto` runs the VLM when a real one is reachable (online, or a cached or local copy), else captions
then answers, so offline the tab answers with the packaged chat model rather than a random VLM.
The conversation travels with each request as OpenAI-style messages, as on the chat tab; the
picture is sent with every question and belongs to the first one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

from plugins.chat import check_history, plain_messages
from zoo.errors import ModelLoadError
from zoo.generation import GenerationParams, sampling_options
from zoo.kinds import ModelKind, register_kind
from zoo.plugin import Choice, Image, Json, Limits, ModelChoices, Plugin, RunContext, Text

AUTO, VLM, CAPTION = "auto", "vision-language model", "caption, then answer"
MODES = (AUTO, VLM, CAPTION)

# ---------------------------------------------------------------------------------------- the tiny model

#: SmolVLM's chat template: "User:<image>question<end_of_utterance>\nAssistant:".
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
#: The tokens Idefics3's processor looks up: SmolVLM's tokenizer is SmolLM2's plus these.
IMAGE_TOKENS = ("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
                *(f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)))


def build_tiny_vlm(out_dir: Path) -> None:
    """Write a tiny Idefics3ForConditionalGeneration (SmolVLM's architecture) with its Idefics3Processor.

    Offline, from configs: a byte-level BPE tokenizer over the common words (zoo.tiny) with
    SmolLM2's ChatML specials and SmolVLM's image tokens, a 32-pixel image processor without
    splitting (4 image tokens a picture), a 2-layer vision tower and a 2-layer Llama.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                              LlamaConfig, PreTrainedTokenizerFast)
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    from zoo.tiny import WORDS, byte_level_words, learn_merges, seeded

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *IMAGE_TOKENS]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = learn_merges([list(w) for w in byte_level_words(WORDS)], n_merges=256)
    vocab: dict[str, int] = {}
    for token in [*specials, *alphabet, *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>",
                                        eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
                                        clean_up_tokenization_spaces=False, model_max_length=2048)
    # PIL backend: it needs no torchvision. 32 px, one tile: (32 / 8)^2 patches / scale_factor^2 = 4 tokens.
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 32},
                                       max_image_size={"longest_edge": 32})
    Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=4,
                      chat_template=SMOLVLM_TEMPLATE).save_pretrained(out_dir)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in specials}
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                       bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<end_of_utterance>"],
                       pad_token_id=ids["<|endoftext|>"])
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        text_config=text.to_dict(), scale_factor=2, image_token_id=ids["<image>"],
        pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=False)
    seeded()
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
                                               pad_token_id=text.pad_token_id, do_sample=False, max_new_tokens=32)
    model.save_pretrained(out_dir, safe_serialization=True)


IMAGE_TEXT_TO_TEXT = register_kind(ModelKind(
    "image-text-to-text", auto_class="AutoModelForImageTextToText", processor="processor", tiny=build_tiny_vlm,
    description="a vision-language model (a picture and text in, text out)"))

# ---------------------------------------------------------------------------------------- the plugin

#: What the chat model gets in "caption, then answer": measured on the packaged SmolLM2-135M with 8 caption
#: questions, this wording (and no repetition penalty: repeating the description is the point) answered 7.
CAPTION_SYSTEM_PROMPT = ("You answer questions about a picture. You cannot see it; you are given its description. "
                         "Answer in one short sentence, using only the description.")
CAPTION_PROMPT = "Description of the picture: {caption}.\nQuestion: {question}"


class ImageTextToText(Plugin):
    """Chat about a picture: a vision-language model, or a caption then the chat model."""

    api_version = 2
    task = "image-text-to-text"
    title = "Ask about an image"
    group = "multimodal"
    description = ("Upload a picture and ask about it; follow-up questions keep the conversation. A vision-language "
                   "model (SmolVLM) looks at the picture when one is reachable. Otherwise (offline, where no real "
                   "one is packaged) `auto` captions the picture with the captioning tab and the chat model answers "
                   "from the caption; the offline `tiny:image-text-to-text` is a random-weight model whose answers "
                   "are noise.")
    order = 62
    model_kind = IMAGE_TEXT_TO_TEXT
    models = ModelChoices(online="HuggingFaceTB/SmolVLM-256M-Instruct", offline="tiny:image-text-to-text",
                          tiny="tiny:image-text-to-text", known=("HuggingFaceTB/SmolVLM-500M-Instruct",))
    uses = {"captioner": "image-to-text", "chat": "conversational"}
    inputs = (
        Image("image"),
        Text("message", lines=2, placeholder="Ask about the picture…", label="Question"),
        Json("history", default=[], info='OpenAI-style messages so far: [{"role": "user", "content": "..."}, ...]'),
    )
    options = (
        Choice("mode", AUTO, choices=MODES,
               info="auto: the vision-language model when a real one is reachable, else caption, then answer"),
        *sampling_options(max_new_tokens=128, temperature=0.0, repetition_penalty=1.0, max_new_tokens_cap=1024,
                          only=("max_new_tokens", "temperature", "repetition_penalty"),
                          info={"max_new_tokens": "Upper bound on the answer's tokens"}),
    )
    outputs = (
        Text("answer", label="Answer", lines=6),
        Json("history", label="History"),
        Json("details", label="Details"),
    )
    examples = (
        {"message": "What is in this picture?"},
        {"message": "What colour is the sky?"},
        {"message": "Is there a house? What colour is its roof?", "mode": CAPTION},
    )
    translations = {
        "zh-CN": {
            "Ask about an image": "看图问答",
            ("Upload a picture and ask about it; follow-up questions keep the conversation. A vision-language model "
             "(SmolVLM) looks at the picture when one is reachable. Otherwise (offline, where no real one is "
             "packaged) `auto` captions the picture with the captioning tab and the chat model answers from the "
             "caption; the offline `tiny:image-text-to-text` is a random-weight model whose answers are noise."):
                ("上传一张图片并就其提问；追问会延续之前的对话。能连接到视觉语言模型（SmolVLM）时，由它看图作答。"
                 "否则（离线时没有随附真实的视觉语言模型）`auto` 先用图像描述标签页为图片生成描述，"
                 "再由聊天模型根据描述作答；离线的 `tiny:image-text-to-text` 是随机权重模型，它的回答只是噪声。"),
            "Image": "图像",
            "Question": "问题",
            "Ask about the picture…": "就这张图片提问…",
            "History": "对话历史",
            'OpenAI-style messages so far: [{"role": "user", "content": "..."}, ...]':
                '目前为止的 OpenAI 格式消息：[{"role": "user", "content": "..."}, ...]',
            "Mode": "模式",
            "auto: the vision-language model when a real one is reachable, else caption, then answer":
                "auto：能连接到真实的视觉语言模型时用它，否则先生成描述再作答",
            "Upper bound on the answer's tokens": "回答的 token 数上限",
            "Answer": "回答",
            "Details": "详细信息",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """The conversation, as the chat tab checks it (a Json field checks nothing by itself)."""
        values["history"] = check_history(values.get("history"), limits)

    def model_for(self, values: Mapping[str, Any], default: str) -> tuple[str | None, Any]:
        """The VLM, or None (caption, then answer: the request runs as a composite of `uses`)."""
        ref = values.get("model") or default
        mode = values.get("mode") or AUTO
        if mode == CAPTION or (mode == AUTO and stand_in(ref)):
            return None, self.model_kind
        return ref, self.model_kind

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        if model is None:
            yield from self.caption_then_answer(values, ctx)
        else:
            yield from self.ask_vlm(model, values, ctx)

    # ------------------------------------------------------------------ caption, then answer (in the server)
    def caption_then_answer(self, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """The captioner describes the picture; the chat model answers the question from that description."""
        ctx.progress(None, "Describing the picture")
        caption = ctx.run("captioner", image=values["image"])["caption"].strip()
        question, history = values["message"], values["history"]
        before = [*history, {"role": "user", "content": question}]
        details = {"mode": CAPTION, "models": {}, "caption": caption}
        answer = ""
        # Only the new question carries the description: the returned history keeps the user's own words.
        for out in ctx.stream("chat", message=CAPTION_PROMPT.format(caption=caption.rstrip(". ") or "(nothing)", question=question),
                              history=history, system_prompt=CAPTION_SYSTEM_PROMPT, **{k: values[k] for k in
                                                  ("max_new_tokens", "temperature", "repetition_penalty")}):
            answer = out["reply"]
            yield {"answer": answer, "history": [*before, {"role": "assistant", "content": answer}],
                   "details": {**details, "models": dict(ctx.models_used)}}
        details["models"] = dict(ctx.models_used)
        tiny = [part for part, ref in details["models"].items() if stand_in(ref)]
        if tiny:
            details["note"] = (f"Tiny random-weight model for {', '.join(tiny)}: "
                               + ("the caption is noise, so the answer is about noise. " if "captioner" in tiny
                                  else "its text is noise. ")
                               + "Pick a real captioner (online) for real descriptions.")
        yield {"answer": answer, "history": [*before, {"role": "assistant", "content": answer}], "details": details}

    # ------------------------------------------------------------------ the vision-language model (next to it)
    def ask_vlm(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Stream the VLM's answer to the conversation, the picture attached to its first question."""
        import threading

        import torch
        from transformers import StoppingCriteria, TextIteratorStreamer

        bundle = model.model
        net, processor = getattr(bundle, "model", None), getattr(bundle, "processor", None)
        if processor is None or not hasattr(processor, "image_processor") or not hasattr(processor, "apply_chat_template"):
            raise ModelLoadError(f"`{model.ref}` has no processor with an image processor and a chat template.",
                                 f"pick one of: {', '.join(self.models.all())}")
        question, history = values["message"], values["history"]
        prompt = processor.apply_chat_template(vlm_messages(history, question), add_generation_prompt=True)
        inputs = processor(text=prompt, images=[values["image"]], return_tensors="pt").to(bundle.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)  # fp16/bf16 models on a GPU
        prompt_tokens = int(inputs["input_ids"].shape[1])
        params = GenerationParams.from_values(values)
        stop = threading.Event()

        class Halt(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                halt = stop.is_set() or ctx.cancelled
                return torch.full((input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device)

        streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = (dict(do_sample=True, temperature=params.temperature) if params.temperature > 0
                    else dict(do_sample=False, temperature=None, top_p=None, top_k=None))
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    net.generate(**inputs, max_new_tokens=params.max_new_tokens, streamer=streamer,
                                 stopping_criteria=[Halt()], repetition_penalty=params.repetition_penalty, **sampling)
            except BaseException as exc:  # surface it in the consumer, never hang it
                failure.append(exc)
                streamer.end()

        ctx.progress(None, "Looking at the picture")
        ctx.start_worker(work, name="vlm-generate")  # never joined: see RunContext.start_worker
        before = [*history, {"role": "user", "content": question}]
        details: dict[str, Any] = {"mode": VLM, "models": {"vlm": model.ref}, "prompt_tokens": prompt_tokens}
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight vision-language model: the answer is noise. It shows the plumbing "
                               f"offline; pick {self.models.online} (online), or mode `{CAPTION}`, for real answers.")
        answer = ""
        try:
            for piece in streamer:
                answer += piece
                yield {"answer": answer, "history": [*before, {"role": "assistant", "content": answer}],
                       "details": details}
        finally:
            stop.set()
        if failure:
            raise failure[0]
        answer = answer.strip()
        yield {"answer": answer, "history": [*before, {"role": "assistant", "content": answer}], "details": details}

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        return 20 + values.get("max_new_tokens", 128) / 10

    # ------------------------------------------------------------------ UI
    def build_ui(self, ui: Any) -> bool:
        """The picture left, the conversation right; Ask/Stop/Clear; mode, models and options folded away."""
        import gradio as gr

        from zoo.ui import RAW_INPUTS, sample_image, throttle

        zoo = ui.zoo
        fields = {f.name: f for f in self.fields()}
        option_names = [f.name for f in self.options]
        ui.header()
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="Picture", height=320, elem_id="itt-image")
            with gr.Column(scale=1):
                chatbot = gr.Chatbot(label="Conversation", height=320, buttons=["copy"], feedback_options=None,
                                     placeholder="Upload a picture, then ask about it.", elem_id="itt-conversation")
        with gr.Row(equal_height=True):
            message = gr.Textbox(show_label=False, placeholder=fields["message"].placeholder, lines=1, max_lines=6,
                                 scale=6, elem_id="itt-message")
            ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="itt-ask")
            stop_btn = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="itt-stop")
            clear_btn = gr.Button("Clear", scale=1, min_width=80, elem_id="itt-clear")
        pickers = ui.pickers()  # the VLM, then the captioner and chat models of "caption, then answer"
        folded = ui.options_accordion()
        details = gr.JSON(label="Details", elem_id="itt-details")
        picture = sample_image()
        gr.Examples([[picture, ex["message"], ex.get("mode", AUTO)] for ex in self.examples],
                    inputs=[image, message, folded["mode"]], label="Examples", elem_id=f"zoo-{self.task}-examples")
        # The API endpoint takes and returns plain messages; these hidden components carry its values.
        api_message = gr.Textbox(visible=False, label="Question")
        api_history = gr.JSON(value=[], visible=False, label="History")
        api_answer = gr.Textbox(visible=False, label="Answer")
        api_trigger = gr.Button(visible=False)
        ui.inputs = {"image": image, "message": api_message, "history": api_history, **folded, **pickers}
        ui.outputs = [api_answer, api_history, details]
        ui.api_endpoint(api_trigger.click)

        pending = gr.State(None)
        names = [n for n in ui.inputs if n not in ("image", "message", "history")]

        def stage(text: str, chat: list[dict]) -> tuple[Any, ...]:
            """Show the question at once and clear the box; the answer streams in the next step."""
            history = plain_messages(chat)
            return "", [*history, {"role": "user", "content": text}], {"message": text, "history": history}

        def respond(turn: dict | None, picture_path: Any, *rest: Any, progress: Any = gr.Progress()
                    ) -> Iterator[tuple[Any, Any, Any]]:
            if not turn:
                yield gr.skip(), gr.skip(), gr.skip()
                return
            values = {"image": picture_path, "message": turn["message"], "history": turn["history"],
                      **dict(zip(names, rest))}
            run_ctx = RunContext(limits=zoo.limits, on_progress=lambda f, d: progress(f, desc=d))
            try:
                for result in throttle(zoo.stream(self.task, values, run_ctx)):
                    yield result["history"], gr.skip(), result["details"]
            except Exception:
                if not run_ctx.cancelled:  # undo the staged turn so the user can fix and ask again
                    yield turn["history"], turn["message"], gr.skip()
                raise
            finally:
                run_ctx.cancel_event.set()

        import inspect

        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ("turn", "image", *names)]
        params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress()))
        respond.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        private = dict(api_visibility="private")
        streamed = dict(concurrency_limit=zoo.settings.max_concurrency_per_model, concurrency_id=f"model-{self.task}",
                        **private, **RAW_INPUTS)
        run_inputs = [pending, image, *(ui.inputs[n] for n in names)]
        events = [trigger(stage, [message, chatbot], [message, chatbot, pending], queue=False, **private)
                  .then(ui.guard(respond), run_inputs, [chatbot, message, details], **streamed)
                  for trigger in (ask_btn.click, message.submit)]
        stop_btn.click(None, None, None, cancels=events, queue=False, **private)
        clear_btn.click(lambda: ([], "", None, None), None, [chatbot, message, pending, details], cancels=events,
                        queue=False, **private)
        image.change(lambda: ([], None), None, [chatbot, pending], cancels=events, queue=False, **private)
        ui.api_help({"image": picture, "message": self.examples[0]["message"], "history": []})
        return True


def stand_in(ref: str | None) -> bool:
    """True for a tiny random-weight model: it shows the plumbing, not a real answer."""
    return bool(ref) and ref.startswith("tiny:")


def vlm_messages(history: list[dict[str, str]], question: str) -> list[dict[str, Any]]:
    """The conversation in the processor's chat format, the picture in front of the first question."""
    messages: list[dict[str, Any]] = []
    pictured = False
    for m in [*history, {"role": "user", "content": question}]:
        content: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}]
        if m["role"] == "user" and not pictured:
            content.insert(0, {"type": "image"})
            pictured = True
        messages.append({"role": m["role"], "content": content})
    return messages


__all__ = ["IMAGE_TEXT_TO_TEXT", "ImageTextToText", "build_tiny_vlm", "vlm_messages"]

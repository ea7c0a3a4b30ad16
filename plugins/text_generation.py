"""Text generation: a prompt in, a continuation out, streamed token by token.

Instruct models get the prompt wrapped in their chat template (switch it off for
base models or raw completion). The loaded model is shared with chat and
generative question answering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from plugins._lm import CAUSAL_LM, LM_MODELS
from zoo.errors import InvalidInput
from zoo.generation import GenerationParams, GenerationStats, LanguageModel, sampling_options
from zoo.plugin import Bool, Plugin, RunContext, Text

if TYPE_CHECKING:
    from zoo.models.manager import Loaded


class TextGeneration(Plugin):
    """Streamed text generation with sampling options."""

    api_version = 2
    task = "text-generation"
    title = "Text generation"
    group = "text"
    description = "Write a prompt; the model continues it, token by token."
    order = 10
    openai = ("completions",)  # served under /v1 too (zoo/openai_api.py)
    model_kind = CAUSAL_LM
    models = LM_MODELS
    inputs = (Text("prompt", lines=4, placeholder="Ask or start something…"),)
    options = (
        *sampling_options(max_new_tokens=128),
        Bool("chat_template", True, label="Use chat template", info="Off for base models / raw completion"),
        Text("system_prompt", "You are a helpful assistant.", required=False, lines=2,
             info="Used with the chat template; empty = the model's own default"),
    )
    outputs = (Text("text", label="Output", lines=8),)
    examples = (
        {"prompt": "What is the capital of France?", "temperature": 0.0, "max_new_tokens": 32},
        {"prompt": "Write a haiku about autumn leaves.", "temperature": 0.8},
        {"prompt": "Explain in two sentences why the sky is blue.", "max_new_tokens": 96},
    )
    translations = {
        "zh-CN": {
            "Text generation": "文本生成",
            "Write a prompt; the model continues it, token by token.": "输入提示词，模型逐个 token 续写。",
            "Prompt": "提示词",
            "Ask or start something…": "提个问题或写个开头…",
            "Use chat template": "使用对话模板",
            "Off for base models / raw completion": "基础模型或纯文本续写时关闭",
            "System prompt": "系统提示词",
            "Used with the chat template; empty = the model's own default":
                "与对话模板一起使用；留空 = 使用模型自带的默认值",
            "Output": "输出",
        },
    }

    def stream(self, model: Loaded[LanguageModel], values: dict[str, Any], ctx: RunContext
               ) -> Iterator[dict[str, Any]]:
        lm = model.model
        prompt = values["prompt"]
        templated = values["chat_template"] and lm.has_chat_template
        if templated:
            system = values["system_prompt"].strip()
            messages = [{"role": "system", "content": system}] if system else []
            prompt = lm.chat_prompt(messages + [{"role": "user", "content": prompt}])
        check_fits(lm, prompt, values, with_system=templated and bool(values["system_prompt"].strip()))
        params = GenerationParams.from_values(values)
        text, stats = "", GenerationStats()
        for piece in lm.stream(prompt, params, cancel=ctx.cancel_event, templated=templated, stats=stats):
            text += piece
            yield {"text": text}
        ctx.report_usage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.new_tokens)
        if not text:
            yield {"text": ""}

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        # Small models decode well over 20 tokens/s on any GPU; keep a margin for loading.
        return 20 + values.get("max_new_tokens", 128) / 20

    # ------------------------------------------------------------------ serve-endpoint (zoo/endpoint.py)
    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """TGI's request: the prompt as is (no chat template); greedy unless do_sample, as TGI decodes."""
        p = parameters
        sample = bool(p.get("do_sample")) or (p.get("do_sample") is None and p.get("temperature") is not None)
        values = {"prompt": inputs, "chat_template": False,
                  "temperature": (p.get("temperature") or 1.0) if sample else 0.0,
                  "top_p": p.get("top_p") or 1.0, "top_k": p.get("top_k") or 0,
                  "repetition_penalty": p.get("repetition_penalty") or 1.0,
                  "seed": -1 if p.get("seed") is None else p["seed"]}
        if p.get("max_new_tokens") is not None:
            values["max_new_tokens"] = p["max_new_tokens"]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """TGI's answer: [{"generated_text": ...}] (streaming is zoo/endpoint.py's)."""
        return [{"generated_text": outputs["text"]}]


def check_fits(lm: LanguageModel, prompt: str, values: dict[str, Any], with_system: bool = False) -> None:
    """The prompt, then max_new_tokens, must fit the model's context window: say which does not, and by how much."""
    window = lm.context_length
    used = lm.count_tokens(prompt)
    parts = "prompt and system prompt" if with_system else "prompt"
    if used >= window:
        raise InvalidInput("prompt", f"<{len(values['prompt'])} characters>",
                           f"must fit the model's {window}-token context window (the {parts} take {used} tokens)",
                           f"shorten the {parts} to well under {window} tokens, or pick a model with a longer "
                           "context (llama.cpp: ZOO_LLAMA_CONTEXT)")
    room = window - used
    if values["max_new_tokens"] > room:
        raise InvalidInput("max_new_tokens", values["max_new_tokens"],
                           f"must fit the model's {window}-token context window after the {used}-token {parts} "
                           f"(at most {room})", f"set max_new_tokens to {room} or less, or shorten the {parts}")

"""What every language-model plugin shares: sampling options, `GenerationParams`, the `LanguageModel` protocol.

Text generation, chat, generative question answering and the OpenAI-compatible
`/v1/chat/completions` all sample with the same options; they are declared here once
(`sampling_options`) and read back into one `GenerationParams` (`from_values`).
A light module: no torch, no transformers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from zoo.plugin import Field, Float, Int, Seed

#: The sampling options, in the order they are declared (and become API parameters).
SAMPLING_NAMES = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling options shared by every LM plugin; temperature 0 means greedy, seed None a random one."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.1
    seed: int | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any], **overrides: Any) -> "GenerationParams":
        """The params named in a request's checked values (others keep their defaults), then `overrides`.

        A seed of -1 (or none) means a random one, as `Seed` fields say.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"GenerationParams has no option {unknown[0]!r}; options: {', '.join(sorted(names))}")
        chosen = {n: values[n] for n in names if values.get(n) is not None}
        chosen.update(overrides)
        if chosen.get("seed") is not None and chosen["seed"] < 0:
            chosen["seed"] = None
        return cls(**chosen)


@dataclass
class GenerationStats:
    """Filled in while streaming: tokens produced and decode time."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None

    @property
    def tokens_per_second(self) -> float:
        """Decode speed of the finished request."""
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def sampling_options(max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 0.95, top_k: int = 50,
                     repetition_penalty: float = 1.1, *, max_new_tokens_cap: int = 4096,
                     info: Mapping[str, str] | None = None, only: Sequence[str] | None = None) -> tuple[Field, ...]:
    """The sampling option fields (max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed).

    The arguments are the defaults; `max_new_tokens_cap` the most a request may ask for (the operator's
    ZOO_MAX_NEW_TOKENS caps it further); `info` replaces a field's help text; `only` keeps just those
    fields, still in the declared order.
    """
    help_text = {"max_new_tokens": "Upper bound on generated tokens", "temperature": "0 = greedy (deterministic)",
                 **(info or {})}
    every: dict[str, Field] = {
        "max_new_tokens": Int("max_new_tokens", max_new_tokens, 1, max_new_tokens_cap, limit="max_new_tokens",
                              info=help_text["max_new_tokens"]),
        "temperature": Float("temperature", temperature, 0.0, 2.0, step=0.05, info=help_text["temperature"]),
        "top_p": Float("top_p", top_p, 0.05, 1.0, step=0.05, info=help_text.get("top_p")),
        "top_k": Int("top_k", top_k, 0, 1000, info=help_text.get("top_k")),
        "repetition_penalty": Float("repetition_penalty", repetition_penalty, 1.0, 2.0, step=0.05,
                                    info=help_text.get("repetition_penalty")),
        "seed": Seed(),
    }
    wanted = SAMPLING_NAMES if only is None else tuple(only)
    unknown = [n for n in wanted if n not in every]
    if unknown:
        raise ValueError(f"sampling_options has no option {unknown[0]!r}; pick from: {', '.join(SAMPLING_NAMES)}")
    return tuple(every[n] for n in SAMPLING_NAMES if n in wanted)


@runtime_checkable
class LanguageModel(Protocol):
    """What LM plugins use of a loaded language model: TransformersLM, LlamaCppLM and RemoteLM all have it."""

    name: str
    device: str

    @property
    def has_chat_template(self) -> bool:
        """True when prompts should be rendered with `chat_prompt` (instruct models, chat endpoints)."""
        ...

    @property
    def context_length(self) -> int:
        """The longest prompt plus completion the model handles, in tokens."""
        ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """A conversation of {"role", "content"} messages rendered as the model's prompt."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in a text (an estimate where no tokenizer is at hand), for window checks."""
        ...

    def stream(self, prompt: str, params: GenerationParams, cancel: threading.Event | None = None,
               stats: GenerationStats | None = None, templated: bool = True) -> Iterator[str]:
        """Yield the completion's text pieces as they are decoded; stops when `cancel` is set."""
        ...

    def generate(self, prompt: str, params: GenerationParams, templated: bool = True,
                 stats: GenerationStats | None = None) -> str:
        """The whole completion at once."""
        ...

"""A family-neutral language model: chat formatting and streaming generation.

Text generation, chat and generative question answering all receive one of these
from the shared loader, so they share one copy of the weights.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass(frozen=True)
class GenerationParams:
    """Sampling options shared by every LM plugin; temperature 0 means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.1
    seed: int | None = None


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


@dataclass
class TransformersLM:
    """A transformers causal LM with its tokenizer."""

    model: Any
    tokenizer: Any
    device: str = "cpu"
    name: str = ""
    _generate_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def has_chat_template(self) -> bool:
        """Instruct models carry a chat template; base models do not."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """Render a conversation with the model's chat template (a plain transcript without one)."""
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nAssistant:"

    def count_tokens(self, text: str) -> int:
        """Tokens in a text, for window checks."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def context_length(self) -> int:
        """The longest prompt plus completion the model handles."""
        return int(getattr(self.model.config, "max_position_embeddings", None) or 2048)

    def stream(self, prompt: str, params: GenerationParams, cancel: threading.Event | None = None,
               stats: GenerationStats | None = None, templated: bool = True) -> Iterator[str]:
        """Yield text pieces as they are decoded; stops early when `cancel` is set or the caller leaves."""
        import torch
        from transformers import StoppingCriteria, TextIteratorStreamer

        stats = stats if stats is not None else GenerationStats()
        stop = threading.Event()
        tok = self.tokenizer
        # A rendered chat template already holds its special tokens; adding BOS again hurts.
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=not templated).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        stats.prompt_tokens = prompt_len
        started = time.perf_counter()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                stats.new_tokens = int(input_ids.shape[1] - prompt_len)
                if stats.first_token_seconds is None and stats.new_tokens > 0:
                    stats.first_token_seconds = time.perf_counter() - started
                halt = stop.is_set() or (cancel is not None and cancel.is_set())
                return torch.full((input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device)

        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = dict(
            **inputs, max_new_tokens=params.max_new_tokens, streamer=streamer,
            stopping_criteria=[_Stop()], repetition_penalty=params.repetition_penalty,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    # The global RNG: requests on one model are serialised by the cache's slot.
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surface it in the consumer, never hang it
                failure.append(exc)
                streamer.end()
            finally:
                stats.seconds = time.perf_counter() - started
                self._generate_lock.release()  # the worker, not the consumer: see below

        # The worker holds the lock and releases it when generate() returns. The consumer never
        # joins it: gradio closes a dropped client's generator on its event loop, and a join there
        # would freeze the server for a token's time (or a whole prompt's prefill).
        thread = threading.Thread(target=work, name=f"generate-{self.name}", daemon=True)
        self._generate_lock.acquire()
        try:
            thread.start()
        except BaseException:
            self._generate_lock.release()
            raise
        closed = False
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except GeneratorExit:
            closed = True
            raise
        finally:
            stop.set()  # the consumer left early (Stop, disconnect) or finished: generate() stops at its next token
            if not closed:  # an error or the end, on the consumer's own thread: wait for the stats
                thread.join()
        if failure:
            raise failure[0]

    def generate(self, prompt: str, params: GenerationParams, templated: bool = True,
                 stats: GenerationStats | None = None) -> str:
        """The whole completion at once."""
        return "".join(self.stream(prompt, params, stats=stats, templated=templated))


@dataclass
class LlamaCppLM:
    """A GGUF model run by llama.cpp (llama-cpp-python): the fast CPU path for quantised LMs."""

    llm: Any
    name: str = ""
    device: str = "cpu"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template stored in the GGUF metadata, if any."""
        return (getattr(self.llm, "metadata", None) or {}).get("tokenizer.chat_template")

    @property
    def has_chat_template(self) -> bool:
        """Instruct GGUFs carry their chat template in the metadata."""
        return bool(self.chat_template)

    def _token_text(self, token_id: int) -> str:
        return self.llm.detokenize([token_id], special=True).decode("utf-8", "ignore")

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """Render the conversation with the GGUF's own template (a plain transcript without one)."""
        template = self.chat_template
        if not template:
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n".join(lines) + "\nAssistant:"
        import jinja2.sandbox

        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(template).render(
            messages=messages, add_generation_prompt=True,
            bos_token=self._token_text(self.llm.token_bos()), eos_token=self._token_text(self.llm.token_eos()),
        )

    def count_tokens(self, text: str) -> int:
        """Tokens in a text, for window checks."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    @property
    def context_length(self) -> int:
        """The context window the model was loaded with."""
        return int(self.llm.n_ctx())

    def stream(self, prompt: str, params: GenerationParams, cancel: threading.Event | None = None,
               stats: GenerationStats | None = None, templated: bool = True) -> Iterator[str]:
        """Yield text pieces as llama.cpp decodes them; leaving the loop stops decoding."""
        stats = stats if stats is not None else GenerationStats()
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=not templated, special=True)
        stats.prompt_tokens = len(tokens)
        greedy = params.temperature <= 0
        started = time.perf_counter()
        with self._lock:  # one llama.cpp context cannot decode two requests at once
            try:
                chunks = self.llm.create_completion(
                    tokens, max_tokens=params.max_new_tokens, stream=True,
                    temperature=0.0 if greedy else params.temperature, top_p=1.0 if greedy else params.top_p,
                    top_k=1 if greedy else params.top_k, repeat_penalty=params.repetition_penalty,
                    seed=params.seed if params.seed is not None else -1,
                )
                for chunk in chunks:
                    if cancel is not None and cancel.is_set():
                        break
                    stats.new_tokens += 1
                    if stats.first_token_seconds is None:
                        stats.first_token_seconds = time.perf_counter() - started
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        yield piece
            finally:
                stats.seconds = time.perf_counter() - started

    def generate(self, prompt: str, params: GenerationParams, templated: bool = True,
                 stats: GenerationStats | None = None) -> str:
        """The whole completion at once."""
        return "".join(self.stream(prompt, params, stats=stats, templated=templated))

    def close(self) -> None:
        """Free llama.cpp's memory now rather than at garbage collection."""
        close = getattr(self.llm, "close", None)
        if callable(close):
            close()

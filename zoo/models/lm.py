"""A family-neutral language model: chat formatting and streaming generation.

Text generation, chat and generative question answering all receive one of these
from the shared loader, so they share one copy of the weights.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

# Shared with every LM plugin (zoo/generation.py); re-exported so `from zoo.models.lm import ...` keeps working.
from zoo.generation import GenerationParams, GenerationStats, LanguageModel

__all__ = ["GenerationParams", "GenerationStats", "LanguageModel", "LlamaCppLM", "ThreadTuner", "TransformersLM",
           "runnable_elsewhere", "sample_next"]


def runnable_elsewhere() -> int:
    """How many threads besides the caller's want a CPU right now (Linux /proc/stat), 0 where unknown."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return max(0, int(line.split()[1]) - 1)
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class ThreadTuner:
    """Picks llama.cpp's thread count from measured speed: every core when they are free, fewer
    while other work holds one.

    ggml's threads meet at a barrier after every operation; when another process takes one of the
    cores, the thread count that is fastest on a quiet machine becomes several times slower
    (BENCHMARKS.md). Each request starts from how busy the CPU is at that moment; then every token
    is timed. Running all cores at their usual speed costs nothing: no probe. Running fewer, it
    tries more every so often, for a few tokens, and gives up a probe at its first slow token;
    a probe that loses waits twice as long before the next one.
    """

    options: tuple[int, ...]
    current: int
    seconds: dict[int, float] = field(default_factory=dict)  # smoothed seconds per token
    best: dict[int, float] = field(default_factory=dict)  # fastest smoothed figure seen per option
    interval: int = 16
    probe_tokens: int = 4
    busy: Callable[[], int] = runnable_elsewhere
    _since: int = 0
    _probing: int | None = None
    _left: int = 0
    _skip: bool = False
    _applied: int | None = None
    _backoff: dict[int, int] = field(default_factory=dict)
    _samples: list[float] = field(default_factory=list)

    @classmethod
    def for_cores(cls, cores: int) -> "ThreadTuner":
        """Options 1, half and all the cores; start with all."""
        options = tuple(sorted({1, max(1, cores // 2), cores}))
        return cls(options=options, current=cores)

    def start_request(self) -> None:
        """A new request keeps what earlier ones learnt; on the very first, start from the cores nobody else wants."""
        if not self.seconds:
            free = max(1, max(self.options) - self.busy())
            self.current = max(o for o in self.options if o <= free)
        self._probing, self._since, self._samples = None, 0, []

    def _degraded(self) -> bool:
        now, best = self.seconds.get(self.current), self.best.get(self.current)
        return now is not None and best is not None and now > 1.3 * best

    def before_token(self, llm: Any) -> None:
        """Start a probe when one is due, and apply the thread count to llama.cpp when it changes."""
        if self._probing is None and self._since >= self.interval:
            if self.current < max(self.options):  # fewer than all: is more faster again?
                higher = [o for o in self.options if o > self.current]
                candidate = min(higher)
                due = self._since >= self.interval * 2 ** self._backoff.get(candidate, 0)
            else:  # all cores: only when they have become slow
                candidate = max(o for o in self.options if o < self.current) if len(self.options) > 1 else None
                due = (candidate is not None and self._degraded()
                       and self._since >= self.interval * 2 ** self._backoff.get(candidate, 0))
            if due and candidate is not None:
                self._probing, self._left, self._samples = candidate, self.probe_tokens, []
        want = self._probing if self._probing is not None else self.current
        if self._applied != want:
            import llama_cpp

            llama_cpp.llama_set_n_threads(llm.ctx, want, want)
            self._applied = want
            self._skip = True  # the first token after a switch pays for re-forming the thread team

    def after_token(self, seconds: float) -> None:
        """Record one token's decode time and settle a probe."""
        skip, self._skip = self._skip, False
        if self._probing is None:
            if not skip:
                old = self.seconds.get(self.current)
                self.seconds[self.current] = now = seconds if old is None else 0.7 * old + 0.3 * seconds
                self.best[self.current] = min(self.best.get(self.current, now), now)
            self._since += 1
            return
        if not skip:
            self._samples.append(seconds)
        self._left -= 1
        mine = self.seconds.get(self.current, float("inf"))
        losing = bool(self._samples) and self._samples[-1] > 1.5 * mine
        if self._left > 0 and not losing:
            return
        probe, self._probing, self._since = self._probing, None, 0
        if self._samples:  # the probe's own tokens say how that option does now
            self.seconds[probe] = sum(self._samples) / len(self._samples)  # the mean: throughput
        self._samples = []
        if self.seconds.get(probe, float("inf")) < mine:
            self._backoff[probe] = 0
            self.current = probe
        else:
            self._backoff[probe] = min(self._backoff.get(probe, 0) + 1, 5)


def sample_next(logits: Any, seen: list[int], params: GenerationParams, rng: Any) -> int:
    """The next token, chosen as transformers' generate() chooses it with the same options.

    Repetition penalty over every token so far (prompt included), then for sampling temperature,
    top-k and top-p; greedy when temperature is 0.
    """
    import numpy as np

    scores = np.array(logits, dtype=np.float32)
    if params.repetition_penalty != 1.0 and seen:
        ids = np.unique(np.asarray(seen, dtype=np.int64))
        picked = scores[ids]
        scores[ids] = np.where(picked < 0, picked * params.repetition_penalty, picked / params.repetition_penalty)
    if params.temperature <= 0:
        return int(np.argmax(scores))
    scores /= params.temperature
    if 0 < params.top_k < scores.shape[0]:  # only the k best can be drawn: sort just those
        order = np.argpartition(scores, -params.top_k)[-params.top_k:]
    else:
        order = np.arange(scores.shape[0])
    order = order[np.argsort(-scores[order], kind="stable")]
    probs = np.exp(scores[order] - scores[order[0]])
    probs /= probs.sum()
    if params.top_p < 1.0:
        # Keep the smallest head whose mass reaches top_p (always at least one token).
        keep = int(np.searchsorted(np.cumsum(probs), params.top_p) + 1)
        probs = probs[:keep] / probs[:keep].sum()
        order = order[:keep]
    return int(order[rng.choice(len(probs), p=probs)])


@dataclass
class TransformersLM:
    """A transformers causal LM with its tokenizer."""

    model: Any
    tokenizer: Any
    device: str = "cpu"
    name: str = ""
    _generate_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def config(self) -> Any:
        """The model's transformers config."""
        return self.model.config

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
        return int(getattr(self.config, "max_position_embeddings", None) or 2048)

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
    threads: "ThreadTuner | None" = None
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
        """Yield text pieces as llama.cpp decodes them; leaving the loop stops decoding.

        llama.cpp computes the logits; the zoo picks each token itself (sample_next), so that
        every option means what it means on transformers: its own repetition penalty skips the
        prompt and has a 64-token window, and on a small model that alone changes answers.
        """
        import codecs

        import llama_cpp
        import numpy as np

        stats = stats if stats is not None else GenerationStats()
        llm = self.llm
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=not templated, special=True)
        stats.prompt_tokens = len(tokens)
        rng = np.random.default_rng(params.seed)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n_vocab = llm.n_vocab()
        budget = min(params.max_new_tokens, llm.n_ctx() - len(tokens))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        started = time.perf_counter()
        with self._lock:  # one llama.cpp context cannot decode two requests at once
            try:
                if self.threads is not None:
                    self.threads.start_request()
                    self.threads.before_token(llm)  # the prompt, too, runs on the chosen count
                self._feed(tokens)
                seen = list(tokens)
                for _ in range(max(0, budget)):
                    if cancel is not None and cancel.is_set():
                        break
                    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
                    token = sample_next(logits, seen, params, rng)
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    stats.new_tokens += 1
                    if stats.first_token_seconds is None:
                        stats.first_token_seconds = time.perf_counter() - started
                    seen.append(token)
                    piece = decoder.decode(llm.detokenize([token], special=False))
                    if piece:
                        yield piece
                    if self.threads is not None:
                        self.threads.before_token(llm)
                    tick = time.perf_counter()
                    llm.eval([token])
                    if self.threads is not None:
                        self.threads.after_token(time.perf_counter() - tick)
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
            finally:
                stats.seconds = time.perf_counter() - started

    def _feed(self, tokens: list[int]) -> None:
        """Evaluate the prompt, reusing the cached prefix of the previous request (chat turns share one)."""
        llm = self.llm
        prefix = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens):
            if a != b:
                break
            prefix += 1
        prefix = min(prefix, len(tokens) - 1)  # the last prompt token is evaluated again, for its logits
        llm.n_tokens = max(0, prefix)
        llm.eval(tokens[llm.n_tokens:])

    def generate(self, prompt: str, params: GenerationParams, templated: bool = True,
                 stats: GenerationStats | None = None) -> str:
        """The whole completion at once."""
        return "".join(self.stream(prompt, params, stats=stats, templated=templated))

    def close(self) -> None:
        """Free llama.cpp's memory now rather than at garbage collection."""
        close = getattr(self.llm, "close", None)
        if callable(close):
            close()

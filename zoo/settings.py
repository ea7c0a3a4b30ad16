"""Every environment variable and command-line flag of the zoo, in one place.

`Settings.from_env()` reads them; nothing else in the zoo reads `os.environ` for
configuration. Settings are an object passed around (to the registry, the model
manager, the UI), never a module global, so tests can build their own.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.errors import InvalidInput

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, raw: str) -> bool:
    """Parse an on/off setting; anything unrecognised is an error, not a silent False."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(name, raw, "must be one of 1/0, true/false, yes/no, on/off")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 1e12, "tb": 1e12}


def parse_size(name: str, raw: str) -> int:
    """Parse a byte size such as `8GB`, `512MiB` or `1000000`."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", raw)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise InvalidInput(name, raw, "must be a size such as 8GB, 512MB or 1000000 (bytes)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_list(raw: str) -> tuple[str, ...]:
    """Comma-separated list; blanks dropped."""
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _total_ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 8 * 10**9


@dataclass(frozen=True)
class Setting:
    """One documented setting: its env var, CLI flag, parser and help text."""

    attr: str
    env: str
    help: str
    parse: Callable[[str, str], Any] | None = None
    flag: str | None = None


@dataclass(frozen=True)
class Settings:
    """The zoo's configuration; build it with `Settings.from_env()` or directly in tests."""

    plugins: tuple[str, ...] = ()
    disabled_plugins: tuple[str, ...] = ()
    plugin_sources: str = "all"
    device: str = "auto"
    memory_budget: int = field(default_factory=lambda: _total_ram() // 2)
    idle_unload_seconds: float = 1800.0
    offline: bool | None = None
    tiny: bool = False
    allow_custom_models: bool = True
    allow_training: bool = True
    allow_model_admin: bool = True
    operators: tuple[str, ...] = ()
    custom_model_allowlist: tuple[str, ...] = ()
    trust_remote_code: bool = False
    allow_pickle: bool = False
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "model-zoo")
    threads: int = 0
    gguf_backend: str = "auto"
    gguf_weights: str = "f16"
    llama_context: int = 4096
    model_overrides: Mapping[str, str] = field(default_factory=dict)
    remote: Mapping[str, str] = field(default_factory=dict)  # task -> endpoint URL or provider:model
    remote_timeout: float = 120.0
    remote_retries: int = 2
    remote_context: int = 4096
    remote_token: str | None = field(default=None, repr=False)  # HF_TOKEN; never printed or logged
    max_text_chars: int = 20_000
    max_new_tokens: int = 1024
    max_audio_seconds: float = 600.0
    max_file_size: int = 50_000_000
    max_image_side: int = 1024
    max_steps: int = 50
    max_image_work: float = 12.0
    image_oversize: str = "refuse"
    max_video_seconds: float = 60.0
    max_video_side: int = 1920
    max_concurrency_per_model: int = 1
    max_queue: int = 64
    max_sessions: int = 100
    output_ttl: float = 3600.0
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    isolation: str = "process"
    worker_memory_limit: int = 0
    api_key: str | None = field(default=None, repr=False)  # ZOO_API_KEY; never printed or logged
    mcp: bool = True
    mcp_tools: tuple[str, ...] = ()  # endpoint names; empty = every plugin's (but those with `mcp = False`)
    auth: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # ZOO_AUTH (user, password); never printed

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def hub_offline(self) -> bool:
        """True when the Hub must not be contacted (HF_HUB_OFFLINE, or no route to it)."""
        if self.offline is not None:
            return self.offline
        return not hub_reachable()

    def model_override(self, task: str) -> str | None:
        """The operator's model for a task (`ZOO_MODEL_TEXT_GENERATION=...`), if any."""
        return self.model_overrides.get(task)

    def remote_target(self, task: str) -> str | None:
        """The remote engine a task's requests go to (`ZOO_REMOTE_TEXT_GENERATION=...`), if any."""
        return self.remote.get(task.replace("_", "-"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, argv: list[str] | None = None) -> "Settings":
        """Read every `ZOO_*` (and the standard HF/Gradio) variable, then CLI flags on top."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for s in SETTINGS:
            if s.env in env and s.parse is not None:
                values[s.attr] = s.parse(s.env, env[s.env])
        if "offline" not in values and "HF_HUB_OFFLINE" in env:
            values["offline"] = parse_bool("HF_HUB_OFFLINE", env["HF_HUB_OFFLINE"])
        if "allow_custom_models" not in values and env.get("SPACE_ID"):
            # A public Space must not let visitors load arbitrary repos by default.
            values["allow_custom_models"] = False
        if "allow_training" not in values and env.get("SPACE_ID") and not values.get("operators"):
            # Training writes to disk and takes the whole CPU: off on a public Space unless enabled
            # (or unless ZOO_OPERATORS names who may: then signed-in operators may, see zoo/operators.py).
            values["allow_training"] = False
        if "allow_model_admin" not in values and env.get("SPACE_ID") and not values.get("operators"):
            # Unloading, deleting and downloading models is the operator's: off on a public Space, as training.
            values["allow_model_admin"] = False
        overrides = {
            key[len("ZOO_MODEL_"):].lower().replace("_", "-"): value
            for key, value in env.items()
            if key.startswith("ZOO_MODEL_") and value.strip()
        }
        if overrides:
            values["model_overrides"] = overrides
        # ZOO_REMOTE_<TASK>; the ZOO_REMOTE_* knobs declared in SETTINGS (timeout, retries...) are not tasks.
        knobs = {s.env for s in SETTINGS}
        remote = {
            key[len("ZOO_REMOTE_"):].lower().replace("_", "-"): _remote_target(key, value)
            for key, value in env.items()
            if key.startswith("ZOO_REMOTE_") and key not in knobs and value.strip()
        }
        if remote:
            values["remote"] = remote
        if env.get("HF_TOKEN", "").strip():
            values["remote_token"] = env["HF_TOKEN"].strip()
        settings = cls(**values)
        if argv:
            settings = settings.apply_args(build_arg_parser().parse_args(argv))
        return settings

    def apply_args(self, args: argparse.Namespace) -> "Settings":
        """Apply parsed CLI flags (None means: not given) on top of these settings."""
        changes = {}
        for s in SETTINGS:
            if s.flag is None:
                continue
            value = getattr(args, s.attr, None)
            if value is not None:
                changes[s.attr] = s.parse(s.flag, str(value)) if s.parse else value
        return self.replace(**changes)


def _str(_name: str, raw: str) -> str:
    return raw.strip()


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(name, raw, "must be a whole number") from None


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(name, raw, "must be a number") from None


def _positive_float(name: str, raw: str) -> float:
    value = _float(name, raw)
    if not value > 0:
        raise InvalidInput(name, raw, "must be a number above 0")
    return value


_seconds = _positive_float


def _count(name: str, raw: str) -> int:
    value = _int(name, raw)
    if value < 0:
        raise InvalidInput(name, raw, "must be 0 or more")
    return value


def _positive(name: str, raw: str) -> int:
    value = _int(name, raw)
    if value < 1:
        raise InvalidInput(name, raw, "must be 1 or more")
    return value


def _nonnegative_float(name: str, raw: str) -> float:
    value = _float(name, raw)
    if not value >= 0:
        raise InvalidInput(name, raw, "must be 0 or more")
    return value


_REMOTE_TARGET = re.compile(r"^(https?://[^\s/]+\S*|(?:[a-z0-9-]+:)?[A-Za-z0-9][\w.-]*/[\w.-]+)$")


def _remote_target(name: str, raw: str) -> str:
    """An endpoint URL, or `provider:owner/model` (Inference Providers; `owner/model` alone = provider auto)."""
    value = raw.strip()
    if not _REMOTE_TARGET.match(value):
        raise InvalidInput(name, raw, "must be an endpoint URL (http://host:port/...) or `provider:owner/model`",
                           "e.g. http://127.0.0.1:8080 or together:meta-llama/Llama-3.1-8B-Instruct")
    return value


def _device(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"auto", "cpu", "cuda", "mps"} and not value.startswith("cuda:"):
        raise InvalidInput(name, raw, "must be one of auto, cpu, cuda, cuda:N, mps")
    return value


def _choice(*options: str) -> Callable[[str, str], str]:
    """A parser for a setting that takes one of a few words."""
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise InvalidInput(name, raw, f"must be one of {', '.join(options)}")
        return value

    return parse


_gguf_backend = _choice("auto", "llama-cpp", "transformers")
_gguf_weights = _choice("f16", "q8_0", "f32", "original")
_oversize = _choice("refuse", "downscale")
_plugin_sources = _choice("all", "builtin")


def _isolation(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"process", "inline"}:
        raise InvalidInput(name, raw, "must be process or inline",
                           "use process (models in worker processes) or inline (in the server, for debugging)")
    return value


def _secret(_name: str, raw: str) -> str | None:
    return raw.strip() or None


def _auth(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`user:password[,user2:pw2]`, or `@/path/file` with one user:password a line (# comments, blank lines
    skipped). Messages name the user or the line, never a password."""
    value = raw.strip()
    if not value:
        return ()
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInput(name, value, f"names a file that cannot be read ({type(exc).__name__})",
                               "give @/path/to/file with one user:password a line, readable by the server") from None
        entries = [(f"line {i} of {path.name}", line.strip()) for i, line in enumerate(lines, 1)
                   if line.strip() and not line.strip().startswith("#")]
        if not entries:
            raise InvalidInput(name, value, "names a file with no user:password line", "add one user:password a line")
    else:
        entries = [(f"entry {i}", part.strip()) for i, part in enumerate(value.split(","), 1) if part.strip()]
    users: dict[str, str] = {}
    for where, entry in entries:
        user, sep, password = entry.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            raise InvalidInput(name, f"<{where}>", "must be user:password (a user name, a colon, a non-empty password)",
                               "write user:password, several separated by commas, or @/path/file with one a line")
        if user in users:
            raise InvalidInput(name, f"<{where}: user {user}>", "names this user twice", "keep one password per user")
        users[user] = password
    return tuple(users.items())


def _list(_name: str, raw: str) -> tuple[str, ...]:
    return parse_list(raw)


def _operators(name: str, raw: str) -> tuple[str, ...]:
    """Hugging Face user names (letters, digits, '-', '_', '.'), comma-separated."""
    names = parse_list(raw)
    for user in names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", user):
            raise InvalidInput(name, raw, f"names `{user}`, which is not a Hugging Face user name",
                               "give user names as on huggingface.co/USER, comma-separated, e.g. alice,bob")
    return names


def _path(_name: str, raw: str) -> Path:
    return Path(raw).expanduser()


SETTINGS: tuple[Setting, ...] = (
    Setting("plugins", "ZOO_PLUGINS", "Allow list of plugin tasks (comma-separated); empty means all.", _list, "--plugins"),
    Setting("disabled_plugins", "ZOO_PLUGINS_DENY", "Plugin tasks to leave out (comma-separated).", _list, "--disable"),
    Setting("plugin_sources", "ZOO_PLUGIN_SOURCES", "Where plugins come from: all (default: the built-in ones and every installed package's `zoo.plugins` entry points) or builtin (only model-zoo's own).", _plugin_sources, "--plugin-sources"),
    Setting("device", "ZOO_DEVICE", "auto, cpu, cuda, cuda:N or mps.", _device, "--device"),
    Setting("memory_budget", "ZOO_MEMORY_BUDGET", "Memory for loaded models (e.g. 8GB); idle models are evicted, least recently used first. Default: half the RAM.", parse_size, "--memory-budget"),
    Setting("idle_unload_seconds", "ZOO_IDLE_UNLOAD", "Unload a model unused for this many seconds (0 = never). Default 1800.", _float),
    Setting("offline", "ZOO_OFFLINE", "1 = never contact the Hub (also read from HF_HUB_OFFLINE); unset = detect.", parse_bool, "--offline"),
    Setting("tiny", "ZOO_TINY", "1 = every tab runs its tiny random-weight model (tests, demos of the UI).", parse_bool, "--tiny"),
    Setting("allow_custom_models", "ZOO_ALLOW_CUSTOM_MODELS", "Let users type any model id. Default on, off on a Space (SPACE_ID set).", parse_bool),
    Setting("allow_training", "ZOO_ALLOW_TRAINING", "Let users fine-tune models (the Fine-tune tab, `zoo train`); training writes to the cache and uses the whole CPU. Default on, off on a Space (SPACE_ID set) unless ZOO_OPERATORS is set.", parse_bool),
    Setting("allow_model_admin", "ZOO_ALLOW_MODEL_ADMIN", "Let users unload, delete and download models in the Models tab. Default on, off on a Space (SPACE_ID set) unless ZOO_OPERATORS is set.", parse_bool),
    Setting("operators", "ZOO_OPERATORS", "Hugging Face user names (comma-separated) who may use the operator tabs (Fine-tune, Models) after signing in with Hugging Face (Spaces OAuth); when set, everyone else is refused there.", _operators),
    Setting("custom_model_allowlist", "ZOO_CUSTOM_MODEL_ALLOWLIST", "Glob patterns (comma-separated) custom ids must match, e.g. `HuggingFaceTB/*`.", _list),
    Setting("trust_remote_code", "ZOO_TRUST_REMOTE_CODE", "Run model repos' own Python code. Default off.", parse_bool),
    Setting("allow_pickle", "ZOO_ALLOW_PICKLE", "Allow pickle (.bin/.pt) weights. Default off: safetensors only.", parse_bool),
    Setting("cache_dir", "ZOO_CACHE_DIR", "Where converted weights and tiny models are cached. Default ~/.cache/model-zoo.", _path),
    Setting("gguf_backend", "ZOO_GGUF_BACKEND", "GGUF models run on llama-cpp (fast on CPU) or transformers; auto = llama-cpp on CPU when the portable build is installed.", _gguf_backend),
    Setting("gguf_weights", "ZOO_GGUF_WEIGHTS", "Weights llama.cpp runs a GGUF with: f16 (default: converted once and cached; answers as fp32 does), q8_0, f32, or original (the file as it is).", _gguf_weights),
    Setting("llama_context", "ZOO_LLAMA_CONTEXT", "Context window (tokens) for GGUF models run by llama.cpp. Default 4096.", _int),
    Setting("threads", "ZOO_THREADS", "CPU threads for torch and llama.cpp (0 = torch's default, and every core for llama.cpp).", _int),
    Setting("remote_timeout", "ZOO_REMOTE_TIMEOUT", "Seconds a remote engine (ZOO_REMOTE_<TASK>) may take to answer, and to send each streamed piece. Default 120.", _seconds),
    Setting("remote_retries", "ZOO_REMOTE_RETRIES", "Retries, with doubling waits from 0.5 s, when a remote engine answers 429 or 5xx or refuses the connection. Default 2.", _count),
    Setting("remote_context", "ZOO_REMOTE_CONTEXT", "Context window (tokens) assumed for a remote language model when chat trims old turns. Default 4096.", _int),
    Setting("max_text_chars", "ZOO_MAX_TEXT_CHARS", "Longest text input accepted. Default 20000.", _int),
    Setting("max_new_tokens", "ZOO_MAX_NEW_TOKENS", "Upper limit for max_new_tokens. Default 1024.", _int),
    Setting("max_audio_seconds", "ZOO_MAX_AUDIO_SECONDS", "Longest audio accepted. Default 600.", _float),
    Setting("max_file_size", "ZOO_MAX_FILE_SIZE", "Largest upload. Default 50MB.", parse_size),
    Setting("max_image_side", "ZOO_MAX_IMAGE_SIDE", "Largest image width/height. Default 1024.", _int),
    Setting("max_steps", "ZOO_MAX_STEPS", "Most diffusion steps. Default 50.", _int),
    Setting("max_image_work", "ZOO_MAX_IMAGE_WORK", "Most work one text-to-image request may ask for, in 512x512 image-steps: steps x images, an image over 512x512 counting (area/512²)² (attention grows with the square of the pixels). Default 12 (e.g. 4 steps x 3 images at 512², 2 steps at 768²), which keeps a CPU request under a minute or two; raise it on a GPU.", _positive_float),
    Setting("image_oversize", "ZOO_IMAGE_OVERSIZE", "What to do with an input image wider or taller than ZOO_MAX_IMAGE_SIDE: refuse (default) or downscale. Either way its size is read from the file's header before anything is decoded.", _oversize),
    Setting("max_video_seconds", "ZOO_MAX_VIDEO_SECONDS", "Longest video clip accepted, in seconds. Default 60.", _positive_float),
    Setting("max_video_side", "ZOO_MAX_VIDEO_SIDE", "Largest video width/height accepted, in pixels. Default 1920 (Full HD).", _positive),
    Setting("max_concurrency_per_model", "ZOO_CONCURRENCY", "Requests one model serves at once. Default 1.", _int),
    Setting("max_queue", "ZOO_MAX_QUEUE", "Requests waiting per tab before 'queue full'. Default 64.", _int),
    Setting("max_sessions", "ZOO_MAX_SESSIONS", "Sessions whose server-side state gradio keeps; every REST call is a session of its own, so this caps the memory they hold (about 0.5 MB each with every tab). The oldest go first. Default 100.", _positive),
    Setting("output_ttl", "ZOO_OUTPUT_TTL", "Seconds outputs (images, speech, subtitles) and uploads stay on disk after they were last handed out; 0 = until the server stops. Default 3600.", _nonnegative_float),
    Setting("server_name", "GRADIO_SERVER_NAME", "Address to listen on. Default 127.0.0.1.", _str, "--host"),
    Setting("server_port", "GRADIO_SERVER_PORT", "Port to listen on. Default 7860.", _int, "--port"),
    Setting("isolation", "ZOO_ISOLATION", "process (default): each loaded model and the plugins using it run in a supervised worker process, so a crash ends only that request; inline: in the server's process (debugging; ZeroGPU is always inline).", _isolation, "--isolation"),
    Setting("worker_memory_limit", "ZOO_WORKER_MEMORY_LIMIT", "Address-space limit per worker process (e.g. 16GB; 0 = none): a model going past it fails alone, with a clear error.", parse_size),
    Setting("api_key", "ZOO_API_KEY", "When set, every OpenAI-compatible /v1 route (and every serve-endpoint route but /health) requires `Authorization: Bearer <key>`; compared in constant time, never logged. Default: unset (open).", _secret),
    Setting("mcp", "ZOO_MCP", "Serve every tab as an MCP tool at /gradio_api/mcp/ (Streamable HTTP). Default on; 0 = off.", parse_bool),
    Setting("mcp_tools", "ZOO_MCP_TOOLS", "The MCP tools to serve, by endpoint name (comma-separated, e.g. text_generation,text_to_image); empty = every tab's but those whose plugin says `mcp = False`.", _list),
    Setting("auth", "ZOO_AUTH", "Sign-in: user:password[,user2:pw2], or @/path/file with one user:password a line. The page, the gradio API, MCP and /v1 then refuse requests without them (a login form, or HTTP Basic). Default: open.", _auth),
)


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add one flag per setting that has one (`--device`, `--plugins`, ...)."""
    parser = parser or argparse.ArgumentParser(description="Model Zoo")
    for s in SETTINGS:
        if s.flag is None:
            continue
        if s.parse is parse_bool:
            parser.add_argument(s.flag, dest=s.attr, action="store_const", const="1", default=None,
                                help=f"{s.help} (env {s.env})")
        else:
            parser.add_argument(s.flag, dest=s.attr, default=None, help=f"{s.help} (env {s.env})")
    return parser


_HUB_REACHABLE: dict[str, bool] = {}


def hub_reachable(host: str = "huggingface.co", timeout: float = 1.5) -> bool:
    """One quick TCP probe of the Hub, remembered for the process (answers within `timeout`)."""
    if host not in _HUB_REACHABLE:
        import socket

        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _HUB_REACHABLE[host] = True
        except OSError:
            _HUB_REACHABLE[host] = False
    return _HUB_REACHABLE[host]

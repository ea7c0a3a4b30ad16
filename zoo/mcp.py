"""The zoo as an MCP server: gradio 6.31's built-in one, told what the declarations say.

Gradio serves every public endpoint as a tool at `/gradio_api/mcp/` (Streamable HTTP), named after
the endpoint's function, described by that function's docstring (a description, an `Args:` line per
parameter, `Returns:` lines). The zoo's endpoint handlers are generated (zoo/ui.py TabBuilder), so
`tool_doc` writes that docstring from the plugin's fields: titles, help, ranges, choices, defaults.

Which tools are served: every plugin's endpoint but those whose plugin says `mcp = False`, or those
ZOO_MCP_TOOLS names (`tool_endpoints`, checked before the server starts). Gradio builds its MCP
server object while it launches; `configure_server` (run by `mcp_lifespan` before the first request)
drops the other endpoints from it (so they are neither listed nor callable), makes its progress
notifications carry the zoo's own step descriptions, and returns every output of a call (gradio's
fast path folds several into one text). Images come back as MCP image content (gradio does that for
image files, and `tidy` splits galleries into them); audio files come back as audio content as well
as their URL; labels, tables and details as JSON text.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from zoo import plugin as P
from zoo.errors import InvalidInput

if TYPE_CHECKING:
    from zoo.runner import Zoo

log = logging.getLogger(__name__)

MCP_PATH = "/gradio_api/mcp/"  # where gradio serves the Streamable HTTP transport


def _one_line(text: str) -> str:
    """Docstring-safe text: gradio reads one parameter a line; markdown emphasis dropped."""
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text or "")
    return " ".join(text.split())


def _sentence(text: str) -> str:
    text = _one_line(text)
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _num(x: float | None) -> str:
    return "any" if x is None else (str(int(x)) if float(x).is_integer() else f"{x:g}")


def field_doc(field: P.Field, limits: P.Limits) -> str:
    """One line saying what a parameter takes: its title, help, type, range or choices, default."""
    parts = [_sentence(field.title)]
    if field.info:
        parts.append(_sentence(field.info))
    if isinstance(field, P.Text):
        kind = "Text" + (f", at most {field.max_chars or limits.max_text_chars} characters")
        parts.append(kind + ("; required." if field.required else "; may be empty."))
        if field.default:
            parts.append(f"Default {field.default!r}.")
    elif isinstance(field, P.Number):
        lo, hi = field.bounds(limits)
        parts.append(f"{'A whole number' if field.integer else 'A number'} from {_num(lo)} to {_num(hi)}; "
                     f"default {_num(field.default)}.")
    elif isinstance(field, P.Choice):
        parts.append(f"One of: {', '.join(map(str, field.choices))}; default {field.default}.")
    elif isinstance(field, P.Bool):
        parts.append(f"true or false; default {'true' if field.default else 'false'}.")
    elif isinstance(field, P.Image):
        parts.append("An image: an http(s) URL or a data:image/...;base64 URL (PNG, JPEG, WebP), "
                     f"at most {limits.max_image_side} px a side.")
    elif isinstance(field, P.Audio):
        parts.append("An audio file: an http(s) URL or a data:audio/...;base64 URL (WAV, MP3, FLAC, OGG)"
                     + ("; may be left out." if not field.required else "."))
    elif isinstance(field, P.File):
        types = f" ({', '.join(field.file_types)})" if field.file_types else ""
        parts.append(("Files" if field.multiple else "A file") + f"{types}: http(s) or data: URLs.")
    return " ".join(p for p in parts if p)


def output_doc(field: P.Field) -> str:
    """One line saying what an output is, for the Returns section."""
    kinds = [(P.Image, "an image (image content)"), (P.Gallery, "a list of images"), (P.Audio, "an audio file"),
             (P.Labels, "labels with scores"), (P.Table, "a table"), (P.Highlight, "text spans with labels"),
             (P.Json, "JSON"), (P.File, "a file (its URL)"), (P.Plot, "plot rows"), (P.Number, "a number"),
             (P.Bool, "true or false"), (P.Text, "text")]
    kind = next((k for cls, k in kinds if isinstance(field, cls)), "a value")
    return f"{field.name}: {_one_line(field.title)}, {kind}"


def tool_doc(plugin: P.Plugin, names: Sequence[str], limits: P.Limits, model_default: str | None = None,
             model_choices: Iterable[str] = ()) -> str:
    """The docstring gradio turns into the plugin's MCP tool: description, `Args:`, `Returns:`."""
    fields = {f.name: f for f in plugin.fields()}
    lines = [_sentence(f"{plugin.title}: {plugin.description}" if plugin.description else plugin.title), "", "Args:"]
    for name in names:
        if name in fields:
            lines.append(f"    {name}: {field_doc(fields[name], limits)}")
        elif name == "model" and plugin.models is not None:
            known = ", ".join(model_choices)
            lines.append(f"    model: The model to run: a Hub id or one of {known or 'the defaults'}; "
                         f"empty = the tab's default ({model_default}).")
        else:
            lines.append(f"    {name}: {_sentence(name.replace('_', ' ').capitalize())}")
    lines += ["", "Returns:"] + [f"    {output_doc(f)}" for f in plugin.outputs]
    return "\n".join(lines)


def tool_endpoints(zoo: "Zoo") -> set[str]:
    """The endpoint names served as MCP tools: ZOO_MCP_TOOLS, or every plugin's but the opted-out ones.

    An operator's ZOO_MCP_TOOLS may name a plugin that opted out (`mcp = False`): the operator decides.
    Raises InvalidInput naming the known endpoints when ZOO_MCP_TOOLS names another.
    """
    plugins = list(zoo.registry.plugins())
    known = {p.endpoint() for p in plugins}
    picked = [name.strip().lstrip("/") for name in zoo.settings.mcp_tools]
    if not picked:
        return {p.endpoint() for p in plugins if getattr(p, "mcp", True)}
    unknown = [name for name in picked if name not in known]
    if unknown:
        raise InvalidInput("ZOO_MCP_TOOLS", ",".join(zoo.settings.mcp_tools),
                           f"names {', '.join(unknown)}, which no tab serves here",
                           f"use endpoint names of this app's tabs: {', '.join(sorted(known))}")
    return set(picked)


def configure_server(server: Any, endpoints: set[str], users: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Keep only `endpoints` as tools on gradio's MCP server object, report progress in the zoo's words,
    add audio content to audio results, and sign its loopback client in when ZOO_AUTH `users` are set.
    Returns the tool names served."""
    for tool, endpoint in list(server.tool_to_endpoint.items()):
        if endpoint.lstrip("/") not in endpoints:
            del server.tool_to_endpoint[tool]
    gradio_format = server._format_progress_message
    server._format_progress_message = lambda update: progress_message(update) or gradio_format(update)
    gradio_postprocess = server.postprocess_output_data
    server.postprocess_output_data = lambda data, root_url: with_audio_content(
        server, tidy(data), gradio_postprocess(tidy(data), root_url))
    server._execute_tool_without_progress = lambda job: _all_outputs(job)
    if users:
        from zoo.auth import loopback_client_factory

        server._get_or_create_client = loopback_client_factory(server, users)
    return sorted(server.tool_to_endpoint)


async def _all_outputs(job: Any) -> list[Any]:
    """Every output of a finished call, as a list. (Gradio's own wraps job.result() in a list, which for
    an endpoint with several outputs makes one text item of the whole tuple.)"""
    from anyio.to_thread import run_sync

    result = await run_sync(job.result)
    return list(result) if isinstance(result, tuple) else [result]


def tidy(data: Any) -> list[Any]:
    """A result's outputs as gradio's MCP content maker reads them best: a gallery's images one by one (each
    becomes image content), other lists and dicts (labels, tables, JSON) as JSON text, not Python's repr."""
    import json

    from gradio_client import utils as client_utils

    tidied: list[Any] = []
    for value in data if isinstance(data, (list, tuple)) else [data]:
        if isinstance(value, list) and value and all(
                isinstance(v, dict) and client_utils.is_file_obj_with_meta(v.get("image")) for v in value):
            tidied.extend(v["image"] for v in value)  # a gallery: [{"image": FileData, "caption": ...}, ...]
        elif isinstance(value, (dict, list)) and not client_utils.is_file_obj_with_meta(value):
            tidied.append(json.dumps(value, ensure_ascii=False, default=str))
        else:
            tidied.append(value)
    return tidied


def progress_message(update: Any) -> str | None:
    """'Denoising step 1/2 (50%)' for a progress update the zoo reported as a fraction with a description
    (gradio's own message says only "Progress" for those); None for the rest."""
    for unit in getattr(update, "progress_data", None) or []:
        if unit.index is None and unit.progress is not None:
            desc = f"{unit.desc} " if unit.desc else ""
            return f"{desc}({unit.progress:.0%})"
    return None


def with_audio_content(server: Any, data: Any, content: list[Any]) -> list[Any]:
    """gradio's content for a result, plus an MCP audio content item for each audio file in it."""
    from gradio_client import utils as client_utils

    for output in data:
        if not client_utils.is_file_obj_with_meta(output):
            continue
        path = output.get("path") or ""
        mime = mimetypes.guess_type(path)[0] or ""
        if not mime.startswith("audio/"):
            continue
        try:
            with open(path, "rb") as f:
                encoded = base64.b64encode(f.read()).decode("ascii")
        except OSError as exc:  # gone (swept) or not here: the URL gradio gave stays
            log.warning("MCP result: cannot read the audio file for audio content (%s)", exc)
            continue
        content.append(server.types.AudioContent(type="audio", data=encoded, mimeType=mime))
    return content


def mcp_lifespan(endpoints: set[str], users: Sequence[tuple[str, str]],
                 inner: Callable[[Any], Any] | None, announce: bool = True) -> Callable[[Any], Any]:
    """A FastAPI lifespan that configures gradio's MCP server (built during launch) before the first
    request (printing the tools served when `announce`), then runs `inner` (the output sweep)."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        server = app.get_blocks().mcp_server_obj
        if server is not None:
            tools = configure_server(server, endpoints, users)
            if announce:
                print(f"* MCP tools ({len(tools)}): {', '.join(tools)}", flush=True)
        async with contextlib.AsyncExitStack() as stack:
            if inner is not None:
                await stack.enter_async_context(inner(app))
            yield

    return lifespan

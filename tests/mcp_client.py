"""The official `mcp` client against a zoo on loopback, over Streamable HTTP (`<url>/gradio_api/mcp/`)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any, Awaitable, Callable

from zoo.mcp import MCP_PATH


def with_session(url: str, use: Callable[[Any], Awaitable[Any]], **client_kwargs: Any) -> Any:
    """Open an MCP session on the app at `url`, initialise it, return what `use(session)` returns.

    `client_kwargs` go to streamablehttp_client (`auth=httpx.BasicAuth(...)`, `headers=...`)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def run() -> Any:
        async with streamablehttp_client(url.rstrip("/") + MCP_PATH, **client_kwargs) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await use(session)

    return asyncio.run(run())


def list_tools(url: str, **client_kwargs: Any) -> dict[str, Any]:
    """The app's MCP tools by name."""
    async def use(session: Any) -> Any:
        return {t.name: t for t in (await session.list_tools()).tools}

    return with_session(url, use, **client_kwargs)


def call_tool(url: str, name: str, arguments: dict[str, Any], *, progress: list | None = None,
              **client_kwargs: Any) -> Any:
    """Call one tool; progress notifications (progress, total, message) go into `progress` when given
    (the client then sends a progress token, which gradio answers through its queued path)."""
    async def use(session: Any) -> Any:
        callback = None
        if progress is not None:
            async def callback(value: float, total: float | None, message: str | None) -> None:
                progress.append((value, total, message))
        return await session.call_tool(name, arguments, progress_callback=callback)

    return with_session(url, use, **client_kwargs)


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


def images(result: Any) -> list[Any]:
    """The image content items of a tool result, decoded with PIL."""
    from PIL import Image

    return [Image.open(io.BytesIO(base64.b64decode(c.data))) for c in result.content if c.type == "image"]


def json_texts(result: Any) -> list[Any]:
    """The text items that hold JSON (labels, tables, details), parsed."""
    parsed = []
    for text in texts(result):
        try:
            parsed.append(json.loads(text))
        except ValueError:
            pass
    return parsed

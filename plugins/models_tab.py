"""Models: what is loaded now (memory, idle time, Unload), what is on disk (size, Delete), and a Hub download.

An operator tab, as Fine-tune is: off on a public Space unless ZOO_ALLOW_MODEL_ADMIN=1 or
ZOO_OPERATORS names who may (they sign in with Hugging Face; zoo/operators.py). Unload, Delete
and Download are UI events only (no API endpoint, no MCP tool); the read-only listing is the
tab's endpoint `/models`, behind the same check.
"""

from __future__ import annotations

import threading
from typing import Any

from zoo.errors import ModelNotAllowed
from zoo.plugin import Plugin, RunContext, Table

LOADED_HEADERS = ("model", "tabs", "kind", "family", "device", "where", "memory", "idle", "state")
DISK_HEADERS = ("model", "where", "size", "files", "delete")


def admin_refusal(settings: Any, profile: Any, action: str) -> str | None:
    """Why this visitor may not `action` models here (a sentence with its fix), or None."""
    from zoo.operators import operator_refusal

    if not settings.allow_model_admin:
        return (f"Model management is off on this server (a public Space), so nobody may {action} here. "
                "Fix: the operator sets ZOO_ALLOW_MODEL_ADMIN=1, or ZOO_OPERATORS=name1,name2 to let those "
                "Hugging Face users in after they sign in.")
    return operator_refusal(settings, profile, action)


def _refuse(settings: Any, profile: Any, action: str) -> None:
    refusal = admin_refusal(settings, profile, action)
    if refusal is not None:
        message, _, fix = refusal.partition(" Fix: ")
        raise ModelNotAllowed(message, fix or None)


def _size(n: int) -> str:
    from zoo.models.disk import _human

    return _human(n)


def _idle(seconds: float, in_use: int) -> str:
    if in_use:
        return "in use"
    seconds = int(seconds)
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"


def loaded_rows(zoo: Any) -> list[list[Any]]:
    """The Loaded now table."""
    rows = []
    for info in zoo.models.loaded():
        names = ", ".join(info.refs) + (" (tiny)" if info.is_tiny else "")
        state = f"in use ({info.in_use})" if info.in_use else "idle"
        memory = f"{_size(info.memory)} " + ("RSS" if info.memory_source == "worker RSS" else "weights")
        rows.append([names, ", ".join(info.tasks) or "-", info.kind, info.family, info.device, info.where,
                     memory, _idle(info.idle_seconds, info.in_use), state])
    return rows


def loaded_choices(zoo: Any) -> list[tuple[str, str]]:
    """(label, id) for the Unload picker."""
    return [(f"{info.ref} · {info.kind} · {info.where}", info.id) for info in zoo.models.loaded()]


def disk_listing(zoo: Any) -> list[Any]:
    from zoo.models.disk import disk_models

    return disk_models(zoo.settings.cache_dir)


def disk_choices(models: list[Any]) -> list[tuple[str, str]]:
    """(label, id) for the Delete picker: the deletable ones."""
    return [(f"{m.ref or m.path.name} · {m.where} · {_size(m.size)}", m.id) for m in models if m.deletable]


def unload(zoo: Any, model_id: str, profile: Any = None) -> str:
    """The Unload button: what happened, as a sentence; refusals raise ZooErrors."""
    _refuse(zoo.settings, profile, "unload models")
    if not model_id:
        raise ModelNotAllowed("No model picked to unload.", "pick one in `Loaded model` (press Refresh first)")
    infos = {i.id: i for i in zoo.models.loaded()}
    before = infos.get(model_id)
    if not zoo.models.unload(model_id):
        return f"`{model_id}` is not loaded any more (unloaded, or evicted while idle)."
    name = before.ref if before else model_id
    freed = f", about {_size(before.memory)} freed" if before else ""
    where = f"; its worker process {before.pid} ended" if before and before.pid else ""
    return f"Unloaded `{name}`{freed}{where}."


def delete(zoo: Any, model_id: str, profile: Any = None) -> str:
    """The Delete button."""
    from zoo.models import disk

    _refuse(zoo.settings, profile, "delete models")
    if not model_id:
        raise ModelNotAllowed("No model picked to delete.", "pick one in `Model on disk` (press Refresh first)")
    gone = disk.delete(model_id, zoo.settings.cache_dir, zoo.models.loaded())
    return f"Deleted `{gone.ref or gone.path.name}` ({gone.where}, {_size(gone.size)} freed)."


def download(zoo: Any, repo_id: str, profile: Any = None, report: Any = None) -> str:
    """The Download button: fetch into the Hugging Face cache, reporting progress."""
    from zoo.models import disk

    _refuse(zoo.settings, profile, "download models")
    path = disk.download(repo_id, zoo.settings, report)
    weights = disk.weights_in(path)
    size, files = disk.folder_size(path)
    got = ", ".join(weights[:4]) + (" …" if len(weights) > 4 else "") if weights else "no weight files"
    hint = "" if weights else (" (this repo may have only pickle weights: ZOO_ALLOW_PICKLE=1 downloads them)")
    return f"Downloaded `{repo_id.strip()}` into the Hugging Face cache: {files} files ({got}){hint}."


def download_relaying_progress(zoo: Any, repo_id: str, profile: Any, progress: Any,
                               every: float = 0.25) -> str:
    """`download` in a thread of its own, its latest progress relayed to `progress(fraction, desc=...)` from
    this thread: huggingface_hub reports from its download threads, where gradio's gr.Progress (which
    finds its event through context variables) cannot reach the page."""
    latest: dict[str, Any] = {}
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["message"] = download(zoo, repo_id, profile=profile,
                                          report=lambda fraction, text: latest.update(last=(fraction, text)))
        except BaseException as exc:  # raised again in the request's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="zoo-download", daemon=True)
    thread.start()
    while True:
        thread.join(every)
        last = latest.pop("last", None)
        if last is not None:
            progress(last[0] if last[0] is not None else 0, desc=last[1])
        if not thread.is_alive():
            break
    if "error" in outcome:
        raise outcome["error"]
    return str(outcome["message"])


class Models(Plugin):
    """The operator's view of models: loaded, on disk, and downloads."""

    api_version = 2
    task = "models"
    title = "Models"
    group = "models"
    mcp = False  # unloading and deleting are the operator's, never a tool for any client
    description = ("The models loaded now (which tab uses each, its memory and idle time: Unload frees it), the "
                   "model files on disk (size: Delete removes them) and, online, a Hub download into the cache "
                   "before anyone needs it. Operators only on a public Space.")
    order = 99
    models = None  # runs in the server: it reads the zoo's own cache and files
    outputs = (
        Table("loaded", headers=LOADED_HEADERS, label="Loaded now"),
        Table("on_disk", headers=DISK_HEADERS, label="On disk"),
    )
    ui_strings = ("#### Loaded now", "Loaded now (press Refresh)", "Loaded model", "Unload", "Refresh", "#### On disk",
                  "On disk (press Refresh)", "Model on disk", "Delete", "#### Download from the Hub", "Hub model id",
                  "Download")
    translations = {
        "zh-CN": {
            "#### Loaded now": "#### 已加载",
            "Loaded now (press Refresh)": "已加载（按“刷新”更新）",
            "Loaded model": "已加载的模型",
            "Unload": "卸载",
            "Refresh": "刷新",
            "#### On disk": "#### 磁盘上",
            "On disk (press Refresh)": "磁盘上（按“刷新”更新）",
            "Model on disk": "磁盘上的模型",
            "Delete": "删除",
            "#### Download from the Hub": "#### 从 Hub 下载",
            "Hub model id": "Hub 模型 ID",
            "Download": "下载",
            "Models": "模型",
            ("The models loaded now (which tab uses each, its memory and idle time: Unload frees it), the model "
             "files on disk (size: Delete removes them) and, online, a Hub download into the cache before anyone "
             "needs it. Operators only on a public Space."):
                ("当前已加载的模型（各被哪个标签页使用、占用内存和空闲时长：卸载（Unload）可将其释放）、"
                 "磁盘上的模型文件（大小：删除（Delete）可将其移除），以及在线时可在有人用到之前从 Hub 下载到缓存。"
                 "在公开的 Space 上仅限管理员操作。"),
            "Loaded now": "已加载",
            "On disk": "磁盘上",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """`zoo run models` (a process of its own: nothing is loaded in it) lists the files on disk."""
        from zoo.models.disk import disk_models, rows
        from zoo.settings import Settings

        settings = Settings.from_env()
        cache_dir = ctx.limits.cache_dir or settings.cache_dir
        return {"loaded": [], "on_disk": rows(disk_models(cache_dir))}

    def build_ui(self, ui: Any) -> bool:
        import gradio as gr

        from zoo.models.disk import download_off_reason, rows
        from zoo.operators import login_button, sign_in_shown, with_profile
        from zoo.ui import user_error

        zoo, settings = ui.zoo, ui.zoo.settings
        t = ui.text  # the page's language (ui_strings, translations)
        ui.header()
        if sign_in_shown(settings):
            login_button()
        if not settings.allow_model_admin:
            gr.Markdown(f"<div class='zoo-quarantine'>{admin_refusal(settings, None, 'manage models')}</div>")
        gr.Markdown(t("#### Loaded now"))
        # Fixed shares: every column fits the tab's width (memory and idle stay in view), long names wrap.
        loaded = gr.Dataframe(headers=list(LOADED_HEADERS), value=[], interactive=False, wrap=True,
                              column_widths=["20%", "14%", "12%", "10%", "6%", "12%", "10%", "8%", "8%"],
                              label=t("Loaded now (press Refresh)"), elem_id="models-loaded")
        with gr.Row(equal_height=True):
            pick = gr.Dropdown(choices=[], value=None, label=t("Loaded model"), scale=4, elem_id="models-loaded-pick")
            unload_btn = gr.Button(t("Unload"), variant="stop", scale=1, elem_id="models-unload")
            refresh_btn = gr.Button(t("Refresh"), variant="secondary", scale=1, elem_id="models-refresh")
        gr.Markdown(t("#### On disk"))
        on_disk = gr.Dataframe(headers=list(DISK_HEADERS), value=[], interactive=False, wrap=True,
                               column_widths=["30%", "16%", "10%", "6%", "38%"],
                               label=t("On disk (press Refresh)"), elem_id="models-disk")
        with gr.Row(equal_height=True):
            disk_pick = gr.Dropdown(choices=[], value=None, label=t("Model on disk"), scale=4,
                                    elem_id="models-disk-pick")
            delete_btn = gr.Button(t("Delete"), variant="stop", scale=1, elem_id="models-delete")
        gr.Markdown(t("#### Download from the Hub"))
        off = download_off_reason(settings)
        with gr.Row(equal_height=True):
            repo = gr.Textbox(label=t("Hub model id"), placeholder="owner/name", scale=4, interactive=off is None,
                              elem_id="models-repo")
            download_btn = gr.Button(t("Download"), variant="primary", scale=1, interactive=off is None,
                                     elem_id="models-download")
        if off:
            gr.Markdown(f"<span class='zoo-model-note'>{off}</span>", elem_id="models-download-off")
        status = gr.Markdown(elem_id="models-status")
        api_trigger = gr.Button(visible=False)

        def tables(profile: Any) -> tuple[Any, Any, Any, Any]:
            _refuse(settings, profile, "list models")
            listed = disk_listing(zoo)
            return (loaded_rows(zoo), gr.Dropdown(choices=loaded_choices(zoo), value=None), rows(listed),
                    gr.Dropdown(choices=disk_choices(listed), value=None))

        def act(do: Any, *args: Any, oauth_profile: Any = None) -> tuple[Any, ...]:
            try:
                message = do(zoo, *args, profile=oauth_profile)
                return (message, *tables(oauth_profile))
            except Exception as exc:  # a ZooError reads as itself; anything else is logged and named
                raise user_error(exc, self.task) from None

        def refresh(oauth_profile: Any = None) -> tuple[Any, ...]:
            try:
                return tables(oauth_profile)
            except Exception as exc:
                raise user_error(exc, self.task) from None

        def listing(oauth_profile: Any = None) -> tuple[list[list[Any]], list[list[Any]]]:
            """The models loaded now and on disk (read-only; operators only where model admin is restricted)."""
            loaded_now, _, disk_now, _ = refresh(oauth_profile)
            return loaded_now, disk_now

        def do_unload(model_id: str, oauth_profile: Any = None) -> tuple[Any, ...]:
            return act(unload, model_id, oauth_profile=oauth_profile)

        def do_delete(model_id: str, oauth_profile: Any = None) -> tuple[Any, ...]:
            return act(delete, model_id, oauth_profile=oauth_profile)

        def do_download(repo_id: str, progress: Any = gr.Progress(), oauth_profile: Any = None) -> tuple[Any, ...]:
            try:
                message = download_relaying_progress(zoo, repo_id, oauth_profile, progress)
                return (message, *tables(oauth_profile))
            except Exception as exc:
                raise user_error(exc, self.task) from None

        everything = [loaded, pick, on_disk, disk_pick]
        private: dict[str, Any] = {"api_visibility": "private"}
        refresh_btn.click(with_profile(refresh, 0), None, everything, **private)
        unload_btn.click(with_profile(do_unload, 1), [pick], [status, *everything], **private)
        delete_btn.click(with_profile(do_delete, 1), [disk_pick], [status, *everything], **private)
        download_btn.click(with_profile(do_download, 1), [repo], [status, *everything], **private)
        listing.__name__ = "models_listing"
        api_trigger.click(with_profile(listing, 0), None, [loaded, on_disk], api_name=self.endpoint(),
                          preprocess=False)
        ui.api_help({})
        return True


__all__ = ["Models", "admin_refusal", "delete", "download", "loaded_rows", "unload"]

"""The `Zoo`: settings + registry + shared model manager, and the one way to run a plugin.

The UI, the CLI, the Space app and the tests all call `Zoo.stream` / `Zoo.run`:
check every field against its declaration, pick and vet the model, pin it in the
shared cache, then call the plugin.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import threading
from contextlib import ExitStack
from typing import Any, Iterator, Mapping

from zoo.errors import CallCycle, Cancelled, InvalidInput, ModelNotAllowed, UnknownPlugin, ZooError
from zoo.gpu import ZeroGPU
from zoo.models import ModelManager, parse_ref
from zoo.plugin import Limits, Plugin, RunContext, Seed, part_model_name
from zoo.registry import Registry
from zoo.settings import Settings
from zoo.workers import PluginSpec

log = logging.getLogger(__name__)


class Zoo:
    """One app's worth of state, passed around explicitly (never a module global)."""

    def __init__(self, settings: Settings | None = None, registry: Registry | None = None,
                 models: ModelManager | None = None):
        self.settings = settings or Settings.from_env()
        self.registry = registry if registry is not None else Registry.discover(
            allow=self.settings.plugins, deny=self.settings.disabled_plugins, sources=self.settings.plugin_sources)
        self.models = models or ModelManager(self.settings)
        self.limits = Limits.from_settings(self.settings)
        self.gpu = ZeroGPU(self)  # inactive (a no-op) unless the Space runs on ZeroGPU
        served = {name for p in self.registry.plugins() for name in (p.task, p.endpoint().replace("_", "-"))}
        for task in sorted(set(self.settings.remote) - served):  # a typo must not pass unnoticed
            log.warning("ZOO_REMOTE_%s names no plugin served here; tasks: %s", task.upper().replace("-", "_"),
                        ", ".join(self.registry.tasks()))
        for plugin in self.registry.plugins():  # composites may be registered before the tasks they use
            problem = self.composition_problem(plugin)
            if problem is not None:
                log.warning("%s", problem)

    # ------------------------------------------------------------------ composition
    def composition_problem(self, plugin: Plugin) -> ZooError | None:
        """Why a composite cannot run here (a task it uses is not served, or it calls itself), or None."""
        for part, task in plugin.uses.items():
            if task.replace("_", "-") not in self.registry:
                return self._unknown_task(plugin, task, part)
        cycle = self._cycle(plugin.task, (plugin.task,))
        if cycle:
            return CallCycle(f"`{plugin.task}` calls itself through its parts: {' -> '.join(cycle)}.",
                             "change `uses` so that no plugin calls back into one that called it")
        return None

    def _cycle(self, task: str, path: tuple[str, ...]) -> tuple[str, ...]:
        """The first path of `uses` from `path[-1]` back to `task`, or ()."""
        if path[-1] not in self.registry:
            return ()
        for used in self.registry.get(path[-1]).uses.values():
            used = used.replace("_", "-")
            if used == task:
                return (*path, used)
            if used not in path:
                found = self._cycle(task, (*path, used))
                if found:
                    return found
        return ()

    def _unknown_task(self, plugin: Plugin, task: str, part: str | None = None) -> UnknownPlugin:
        what = f"its part `{part}` uses task `{task}`" if part else f"it calls task `{task}`"
        parts = f"; its parts: {', '.join(plugin.uses)}" if plugin.uses and not part else ""
        return UnknownPlugin(f"`{plugin.task}` cannot run: {what}, and no plugin for `{task}` is served here.",
                             f"install or enable the plugin for `{task}` (check ZOO_PLUGINS and ZOO_PLUGINS_DENY); "
                             f"served tasks: {', '.join(self.registry.tasks()) or '(none)'}{parts}")

    def check_parts(self, plugin: Plugin, values: Mapping[str, Any]) -> dict[str, str]:
        """Each `<part>_model` of a composite, vetted by the used task's own rules ("" = its default model).

        A plugin with a model of its own that also declares `uses` (a hybrid) may run on its model
        without its parts: a part whose task is not served is left "" here, and the request fails
        only if it runs as a composite (`stream_in_server`)."""
        problem = self.composition_problem(plugin)
        if problem is not None and plugin.models is None:
            raise problem
        picked = {}
        for part, task in plugin.uses.items():
            if task.replace("_", "-") not in self.registry:  # a hybrid's missing part: refused if it is called
                picked[part_model_name(part)] = ""
                continue
            used = self.registry.get(task)
            name = part_model_name(part)
            try:
                picked[name] = self.check_model(used, values.get(name) or "") if used.models is not None else ""
            except ZooError as exc:  # the used task's rule, said of this parameter
                exc.message = f"`{name}` ({task}): {exc.message}"
                exc.args = (exc.message,)
                raise
        return picked

    def _call(self, plugin: Plugin, checked: Mapping[str, Any], parent: RunContext, name: str,
              values: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """`ctx.stream(name, **values)` of a plugin that runs in the server: another plugin, as a tab runs it."""
        part = name if name in plugin.uses else None
        task = plugin.uses[part] if part else name
        if task.replace("_", "-") not in self.registry:
            raise self._unknown_task(plugin, task, part)
        used = self.registry.get(task)
        chain = (*parent._chain, plugin.task)
        if used.task in chain:
            raise CallCycle(f"`{plugin.task}` called `{used.task}`, which is already running in this request "
                            f"({' -> '.join((*chain, used.task))}).",
                            "a plugin cannot call itself, directly or through others; call another task")
        if part and used.models is not None and not values.get("model"):
            values = {**values, "model": checked.get(part_model_name(part)) or ""}
        label = part.replace("_", " ").capitalize() if part else used.title

        def progress(fraction: float | None, desc: str) -> None:
            if parent.on_progress is not None:
                parent.on_progress(fraction, f"{label}: {desc}" if desc else label)

        child = RunContext(limits=parent.limits, on_progress=progress, cancel_event=parent.cancel_event,
                           temp_dir=parent.temp_dir, _chain=chain)
        parent.raise_if_cancelled()
        try:
            yield from self.stream(used.task, values, child)
        except ZooError as exc:
            if not isinstance(exc, Cancelled):  # say which step refused: the field may not be the composite's
                exc.message = f"{label} ({used.task}): {exc.message}"
                exc.args = (exc.message,)
            raise
        finally:
            if child.model_ref:
                parent.models_used[part or used.task] = child.model_ref

    def runs_here(self, plugin: Plugin, checked: Mapping[str, Any]) -> bool:
        """True when this request runs in the server, as a composite: the plugin has no model of its own, or
        it is a hybrid (a model and `uses`) whose `model_for` returns no model (ref None) for these values."""
        if plugin.runs_in_server():
            return True
        if not plugin.uses:
            return False
        ref, _ = plugin.model_for(checked, checked.get("model") or self.default_model(plugin))
        return ref is None

    def stream_in_server(self, plugin: Plugin, checked: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Run a plugin without a model of its own here, in the server: run(None, ...); ctx.run reaches the zoo."""
        if plugin.models is not None:  # a hybrid running as a composite: now its parts must be served
            problem = self.composition_problem(plugin)
            if problem is not None:
                raise problem
        ctx.model_ref, ctx.model_revision, ctx.is_tiny = "", None, False
        ctx._call = lambda parent, name, values: self._call(plugin, checked, parent, name, values)
        ctx.raise_if_cancelled()
        if plugin.can_stream:
            yield from plugin.stream(None, checked, ctx)
        else:
            yield plugin.run(None, checked, ctx)

    # ------------------------------------------------------------------ models
    def default_model(self, plugin: Plugin) -> str:
        """The model a tab runs when the user picks none: remote engine, operator, tiny, online or offline default.

        "" for a plugin without a model of its own."""
        if plugin.models is None:
            return ""
        remote = self.remote_model(plugin)
        if remote:
            return remote
        override = self.settings.model_override(plugin.task)
        if override:
            return override
        choices = plugin.models
        if self.settings.tiny and choices.tiny:
            return choices.tiny
        ok, _ = self.models.availability(choices.online)
        if ok or not choices.offline:
            return choices.online
        return choices.offline

    def remote_model(self, plugin: Plugin) -> str | None:
        """`remote:<target>` when the operator sent this tab to a remote engine (ZOO_REMOTE_<TASK>), else None."""
        # Either name works: the task (ZOO_REMOTE_CONVERSATIONAL) or the endpoint (ZOO_REMOTE_CHAT).
        target = self.settings.remote_target(plugin.task) or self.settings.remote_target(plugin.endpoint())
        return f"remote:{target}" if target else None

    def model_choices(self, plugin: Plugin) -> list[str]:
        """Models offered in the tab's picker, the default first."""
        if plugin.models is None:
            return []
        default = self.default_model(plugin)
        # Listed models the operator's pickle policy refuses are left out rather than offered and then refused.
        listed = [default] + [m for m in plugin.models.all() if m != default and not self._refused_pickle(m)]
        return listed + [m for m in self.trained_models(plugin) if m not in listed]

    def trained_models(self, plugin: Plugin) -> list[str]:
        """`trained:NAME` of every model in the store trained for this plugin's task, newest first."""
        from zoo.models.store import ModelStore

        try:
            return [m.ref for m in ModelStore.of(self.settings.cache_dir).list(plugin.task, _kind_name(plugin))]
        except OSError:  # an unreadable store offers nothing rather than breaking the tab
            return []

    def _refused_pickle(self, ref: str) -> bool:
        return not self.settings.allow_pickle and parse_ref(ref).is_pickle

    def check_model(self, plugin: Plugin, ref: str) -> str:
        """Vet a requested model against the plugin's list and the operator's rules."""
        ref = (ref or "").strip()
        if plugin.models is None:
            if ref:
                parts = ", ".join(f"`{part_model_name(p)}`" for p in plugin.uses)
                raise ModelNotAllowed(f"`{plugin.task}` runs no model of its own, so `{ref}` cannot be picked for it.",
                                      f"leave `model` out{f'; pick the models of its parts with {parts}' if parts else ''}")
            return ""
        if not ref:
            return self.default_model(plugin)
        parsed = parse_ref(ref)  # rejects traversal and malformed ids with a clear message
        if parsed.is_pickle and not self.settings.allow_pickle:  # listed or not, from a visitor or the operator
            raise ModelNotAllowed(
                f"`{ref}` is an openai-whisper checkpoint, a pickle (.pt), which can run code when loaded; "
                "this server loads no pickles.",
                "pick a model with .safetensors or CTranslate2 weights (e.g. packaged:whisper-tiny.en), or the "
                "operator can set ZOO_ALLOW_PICKLE=1 to trust openai-whisper's checkpoints")
        if ref in plugin.models.all() or ref == self.settings.model_override(plugin.task):
            return ref
        if parsed.scheme == "trained":  # the store's own: any visitor may pick one trained for this task
            return self._check_trained(plugin, parsed.name, ref)
        if ref == self.remote_model(plugin):
            return ref
        if parsed.scheme == "remote":  # a URL typed by a visitor would make this server post anywhere
            raise ModelNotAllowed(f"Remote engine `{ref}` cannot be chosen from the app.",
                                  f"the operator can set ZOO_REMOTE_{plugin.task.upper().replace('-', '_')}="
                                  f"{parsed.name}")
        if parsed.is_local_file:  # a local folder, or an openai-whisper checkpoint file: torch.load on any file
            raise ModelNotAllowed(f"Local path `{ref}` cannot be chosen from the app.",
                                  f"the operator can set ZOO_MODEL_{plugin.task.upper().replace('-', '_')}={ref}")
        if not plugin.models.allow_custom:
            raise ModelNotAllowed(f"`{plugin.task}` only runs its listed models, not `{ref}`.",
                                  f"pick one of: {', '.join(plugin.models.all())}")
        if not self.settings.allow_custom_models:
            raise ModelNotAllowed(f"Custom model `{ref}` is not allowed on this server.",
                                  "pick a listed model (the operator can set ZOO_ALLOW_CUSTOM_MODELS=1)")
        patterns = self.settings.custom_model_allowlist
        if patterns and not any(fnmatch.fnmatch(parsed.name, p) for p in patterns):
            raise ModelNotAllowed(f"Custom model `{ref}` is not in the allow list ({', '.join(patterns)}).",
                                  "pick a listed model or one matching the allow list")
        return ref

    def _check_trained(self, plugin: Plugin, name: str, ref: str) -> str:
        from zoo.models.store import ModelStore

        model = ModelStore.of(self.settings.cache_dir).get(name)  # ModelNotFound names the ones there are
        if not model.serves(plugin.task, _kind_name(plugin)):
            served = [p.title for p in self.registry.plugins() if model.serves(p.task, _kind_name(p))]
            where = f"pick it in the {' or '.join(served)} tab" if served else "pick it in the tab for its task"
            raise ModelNotAllowed(f"`{ref}` is a {model.task or 'unknown-task'} model, so {plugin.title} "
                                  f"({plugin.task}) cannot run it.",
                                  f"{where}; here pick one of: {', '.join(self.model_choices(plugin))}")
        return ref

    def check_kind(self, plugin: Plugin, ref: str, kind: str) -> None:
        """Refuse, before loading, a model of another kind than the tab runs (a picture model on a text tab)."""
        what = self.models.kind_mismatch(ref, kind)
        if what is not None:
            listed = [m for m in self.model_choices(plugin) if not m.startswith("remote:")]
            raise InvalidInput("model", ref, f"must be a {kind} model for {plugin.title}, not {what}",
                               f"pick one of: {', '.join(listed)}")

    @property
    def isolation(self) -> str:
        """Where model work runs: `process` (supervised workers) or `inline`; ZeroGPU needs inline."""
        return "inline" if self.gpu.active else self.settings.isolation

    # ------------------------------------------------------------------ running
    def check(self, plugin: Plugin, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check every declared field (defaults fill gaps); unknown names are errors."""
        model = [] if plugin.runs_in_server() else ["model"]  # a plugin without a model has no `model` parameter
        known = {f.name for f in plugin.fields()} | set(model)
        unknown = set(values) - known
        if unknown:
            raise InvalidInput(sorted(unknown)[0], values[sorted(unknown)[0]],
                               f"is not a parameter of {plugin.task}",
                               f"use: {', '.join([*(f.name for f in plugin.fields()), *model]) or '(none)'}")
        checked: dict[str, Any] = {}
        for f in plugin.fields():
            checked[f.name] = f.check(values.get(f.name, f.default), self.limits)
        for f in plugin.fields():  # seeds: -1 means random, and the one used is reported
            if isinstance(f, Seed) and checked.get(f.name) == -1:
                checked[f.name] = random.randrange(0, 2**31)
        if not plugin.runs_in_server():  # a hybrid (a model and `uses`) has both: `model` and `<part>_model`
            checked["model"] = self.check_model(plugin, values.get("model") or "")
        if plugin.uses or plugin.runs_in_server():
            checked.update(self.check_parts(plugin, checked))
        plugin.check(checked, self.limits)
        return checked

    def stream(self, task: str, values: Mapping[str, Any], ctx: RunContext | None = None
               ) -> Iterator[dict[str, Any]]:
        """Run a plugin, yielding growing outputs (one final dict for non-streaming plugins)."""
        plugin = self.registry.get(task)
        checked = self.check(plugin, values)
        ctx = ctx or RunContext(limits=self.limits)
        ctx.limits = self.limits
        # No model of its own (or a hybrid whose model_for picks none): no GPU call, no worker; its ctx.run
        # calls get theirs. Decided here, before the GPU and worker paths.
        if self.runs_here(plugin, checked):
            yield from self.stream_in_server(plugin, checked, ctx)
            return
        remote = checked["model"].startswith("remote:")  # a remote engine needs no GPU here
        if self.gpu.active and not remote:  # ZeroGPU: the model work runs under spaces.GPU (see zoo/gpu.py)
            yield from self.gpu.stream(plugin.task, checked, ctx)
            return
        yield from self.stream_checked(plugin, checked, ctx)

    def stream_checked(self, plugin: Plugin, checked: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Load the model and run the plugin on values `check` returned (ZeroGPU's worker enters here)."""
        if self.runs_here(plugin, checked):
            yield from self.stream_in_server(plugin, checked, ctx)
            return
        ref, kind = plugin.model_for(checked, self.default_model(plugin))
        if ctx.on_progress:  # finding the files may mean a download: say so before it starts
            ctx.on_progress(None, f"Finding {ref}")
        self.check_kind(plugin, ref, kind)
        # A plugin class a worker cannot import by name (one defined inside a function) runs inline.
        worker = self.isolation == "process" and PluginSpec.of(plugin) is not None
        pin = ExitStack()
        closed = False
        try:
            loaded = pin.enter_context(self.models.use(ref, kind, progress=ctx.on_progress, worker=worker,
                                                          task=plugin.task))
            ctx.model_ref = ref
            ctx.model_revision = loaded.resolved.ref.revision
            ctx.is_tiny = loaded.is_tiny
            ctx.raise_if_cancelled()
            if loaded.family == "remote":  # ZOO_REMOTE_<TASK>: the engine does the work, in this process
                outputs = plugin.run_remote(loaded.model, checked, ctx)
                if isinstance(outputs, Mapping):
                    yield outputs
                else:
                    yield from outputs
            elif loaded.in_worker:  # the plugin runs in the model's worker process, next to the model
                yield from loaded.stream(plugin, checked, ctx)
            elif plugin.can_stream:
                yield from plugin.stream(loaded, checked, ctx)
            else:
                yield plugin.run(loaded, checked, ctx)
        except GeneratorExit:
            closed = True
            raise
        finally:
            # The pin (and the model's concurrency slot) lasts as long as the plugin's worker threads.
            # A closed generator is closed on gradio's event loop: unpinning may evict a model (gc),
            # so it happens on a thread of its own, never there.
            if closed:
                ctx.when_idle(lambda: threading.Thread(target=pin.close, name="zoo-unpin", daemon=True).start())
            else:
                ctx.when_idle(pin.close)

    def run(self, task: str, /, ctx: RunContext | None = None, **values: Any) -> dict[str, Any]:
        """Run a plugin to completion and return its outputs."""
        # `task` is positional-only so that a plugin may declare a field named `task`
        # (speech recognition's transcribe/translate) and still be called with keywords.
        # It returns once the plugin's worker threads are done too: the caller may exit the process next,
        # and a daemon thread still inside torch at interpreter exit aborts it ("terminate called ...").
        result: dict[str, Any] = {}
        ctx = ctx or RunContext(limits=self.limits)
        for result in self.stream(task, values, ctx):
            pass
        ctx.wait_idle(timeout=60)
        return result


def _kind_name(plugin: Plugin) -> str | None:
    """The name of the model kind a plugin declares (None for one without a model)."""
    kind = plugin.model_kind
    return getattr(kind, "name", kind)

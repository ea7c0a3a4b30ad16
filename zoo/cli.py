"""Command line: `zoo list`, `zoo run TASK --field value ...`, `zoo serve`, `zoo space build|push`,
`zoo train JOB --data F --name N`, `zoo models [list|delete|export]`, `zoo push-model trained:NAME`,
`zoo serve-endpoint` (the plugins for other zoos' remote tabs: zoo/endpoint.py). `python -m zoo ...`
is the same command.

`run` flags are generated from the plugin's declaration, so every plugin gets a CLI
for free. Results are printed as JSON; images and audio are written to files and
their paths printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from zoo.errors import ZooError
from zoo.plugin import Bool, File, Number, part_model_name
from zoo.settings import SETTINGS, Settings, build_arg_parser, parse_bool


def _jsonable(value: Any, out_dir: Path, name: str) -> Any:
    """Make a plugin output printable: PIL images become PNG files, paths become strings."""
    if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image
        path = out_dir / f"{name}.png"
        value.save(path, pnginfo=_pnginfo(value))
        return str(path)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, out_dir, f"{name}-{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _jsonable(v, out_dir, f"{name}-{k}") for k, v in value.items()}
    return value


def _pnginfo(image: Any) -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in getattr(image, "info", {}).items():
        if isinstance(v, str):
            info.add_text(k, v)
    return info


def _prog() -> str:
    """How the user called us, for usage lines: the `zoo` console script or `python -m zoo`."""
    return "zoo" if Path(sys.argv[0]).name == "zoo" else "python -m zoo"


def cmd_list(settings: Settings, as_json: bool) -> int:
    """Print each plugin: task, package, version and Plugin API, default model and whether it is available here."""
    from zoo.plugin import API_VERSION
    from zoo.runner import Zoo

    zoo = Zoo(settings)
    rows = []
    for plugin in zoo.registry.plugins():
        origin = zoo.registry.origin(plugin.task)
        row = {"task": plugin.task, "title": plugin.title, "endpoint": "/" + plugin.endpoint(),
               "package": origin.package, "version": origin.version, "api_version": plugin.api_version,
               "plugin_source": origin.source}
        if plugin.models is None:  # model-less or composite: it runs here, on the models of the tasks it uses
            problem = zoo.composition_problem(plugin)
            where = str(problem) if problem else (
                "uses " + ", ".join(f"{part}: {task}" for part, task in plugin.uses.items()) if plugin.uses
                else "runs in the server")
            row |= {"default_model": None, "available": problem is None, "source": where,
                    "online_default": None, "offline_default": None, "uses": dict(plugin.uses)}
        else:
            default = zoo.default_model(plugin)
            ok, where = zoo.models.availability(default)
            row |= {"default_model": default, "available": ok, "source": where,
                    "online_default": plugin.models.online, "offline_default": plugin.models.offline}
            if plugin.uses:  # a hybrid: without its model it runs as a composite on these tasks
                problem = zoo.composition_problem(plugin)
                row |= {"uses": dict(plugin.uses), "source": f"{where}; without it " + (
                    str(problem) if problem else "uses " + ", ".join(f"{p}: {t}" for p, t in plugin.uses.items()))}
        rows.append(row)
    from zoo.models.store import ModelStore

    trained = [{"ref": m.ref, "task": m.task,
                "serves": [p.task for p in zoo.registry.plugins() if m.serves(p.task, getattr(p.model_kind, "name", p.model_kind))],
                "base_model": m.card.get("base_model"),
                "metrics": m.card.get("metrics", {}), "date": m.card.get("date")}
               for m in ModelStore.of(settings.cache_dir).list()]
    broken = [{"plugin": q.name, "package": q.package, "version": q.version, "error": q.error, "fix": q.fix}
              for q in zoo.registry.quarantined]
    if as_json:
        print(json.dumps({"api_version": API_VERSION, "plugins": rows, "quarantined": broken, "trained": trained},
                         indent=2))
        return 0
    width = max([len(r["task"]) for r in rows] + [len(b["plugin"]) for b in broken] + [4])
    packages = [f"{r['package'] or '-'} {r['version']}".strip() for r in rows]
    pwidth = max([len(p) for p in packages] + [7])
    print(f"   {'task':<{width}}  {'package':<{pwidth}}  api  default model (where); "
          f"this zoo runs Plugin API {API_VERSION}")
    for r, package in zip(rows, packages):
        mark = "ok " if r["available"] else "-- "
        print(f"{mark}{r['task']:<{width}}  {package:<{pwidth}}  {r['api_version']:<3}  "
              f"{r['default_model'] or 'no model'}  ({r['source']})")
    for b in broken:
        package = f"{b['package'] or '-'} {b['version']}".strip()
        print(f"!! {b['plugin']:<{width}}  {package:<{pwidth}}  quarantined: {b['error']}  Fix: {b['fix']}")
    if trained:
        print("\ntrained models (the model store; pick them in their tab or with model=...):")
        for t in trained:
            print(f"   {t['ref']}  {', '.join(t['serves'])}  from {t['base_model']}  {_metrics(t['metrics'])}")
    return 0


def _metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in (metrics or {}).items())


# --------------------------------------------------------------------------- training and the model store


def _add_training_arguments(sub: Any) -> None:
    """`train JOB --data F --name N`, `models [list|delete NAME|export NAME DIR]`, `push-model`."""
    # The jobs register with the plugins (the Fine-tune tab's), found when the command runs: here only
    # their names are taken, and a wrong one is refused then with the list.
    p = sub.add_parser("train", help="fine-tune a model on your data into the model store (trained:NAME)")
    p.add_argument("job", help="what to train: a job the Fine-tune tab lists (a wrong name is answered with the list)")
    p.add_argument("--data", required=True, type=Path, metavar="FILE", help="the training data (each job's format: "
                   "the Fine-tune tab's description)")
    p.add_argument("--name", required=True, metavar="NAME", help="the new model's name (trained:NAME)")
    p.add_argument("--base", default=None, metavar="REF", help="base model (default: the job's own)")
    for flag, kind in (("epochs", int), ("learning-rate", float), ("batch-size", int), ("max-length", int),
                       ("validation-split", float), ("seed", int), ("lora-rank", int), ("lora-alpha", float),
                       ("lora-targets", str)):
        p.add_argument(f"--{flag}", dest=flag.replace("-", "_"), type=kind, default=None)
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a stopped run of that name")
    p.add_argument("--json", dest="train_json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_train_handler)

    m = sub.add_parser("models", help="the model store: list, delete NAME, export NAME DIR")
    m.add_argument("action", nargs="?", default="list", choices=("list", "delete", "export"))
    m.add_argument("model", nargs="?", default=None, metavar="NAME", help="trained:NAME or NAME")
    m.add_argument("dir", nargs="?", default=None, type=Path, metavar="DIR", help="export: a new folder")
    m.add_argument("--json", dest="models_json", action="store_true")
    m.set_defaults(handler=_models_handler)

    push = sub.add_parser("push-model", help="upload a trained model to the Hub (huggingface_hub upload_folder)")
    push.add_argument("model", metavar="trained:NAME")
    push.add_argument("--repo-id", required=True, metavar="USER/NAME")
    push.add_argument("--private", action="store_true")
    push.add_argument("--dry-run", action="store_true", help="print the files that would be uploaded; no network")
    push.set_defaults(handler=_push_handler)


def _store_name(raw: str | None) -> str:
    from zoo.errors import InvalidInput
    from zoo.models.store import check_name

    if not raw:
        raise InvalidInput("model", raw, "must name a trained model", "see `zoo models`")
    return check_name(raw[len("trained:"):] if raw.startswith("trained:") else raw, "model")


def _train_handler(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from zoo.registry import Registry
    from zoo.training import run_job

    # Discovering the plugins registers their training jobs (no model is loaded).
    Registry.discover(allow=settings.plugins, deny=settings.disabled_plugins, sources=settings.plugin_sources)
    options = {k: getattr(args, k) for k in ("epochs", "learning_rate", "batch_size", "max_length",
                                             "validation_split", "seed", "lora_rank", "lora_alpha", "lora_targets")
               if getattr(args, k) is not None}
    shown = [0.0]

    def report(event: dict[str, Any]) -> None:
        now = time.monotonic()
        if "metric" in event or "val_loss" in event:
            metric = f", {event.get('metric_name')} {event['metric']:.3f}" if event.get("metric") is not None else ""
            print(f"epoch {event.get('epoch', 0):.2f} step {event['step']}: val_loss {event['val_loss']:.4f}{metric}",
                  file=sys.stderr, flush=True)
        elif "train_loss" in event and (now - shown[0] > 2 or event["step"] == event.get("total_steps")):
            shown[0] = now
            eta = ""
            if event.get("steps_this_run") and event.get("elapsed"):
                left = event["elapsed"] / event["steps_this_run"] * (event["total_steps"] - event["step"])
                eta = f", ETA {int(left) // 60}:{int(left) % 60:02d}"
            print(f"step {event['step']}/{event.get('total_steps')}: loss {event['train_loss']:.4f}{eta}",
                  file=sys.stderr, flush=True)

    result = run_job(settings, args.job, args.data, args.name, base=args.base, options=options, report=report,
                     resume_from=args.resume, waiting=lambda text: print(text, file=sys.stderr, flush=True))
    if args.train_json:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2, default=str))
    else:
        print(f"saved {result['ref']} ({', '.join(result['card'].get('labels') or []) or result['card']['task']}) "
              f"in {result['seconds']:.0f} s; validation: {_metrics(result['card']['metrics'])}")
        print(f"use it: {_prog()} run {result['card']['task']} --model {result['ref']} ...")
    return 0


def _models_handler(settings: Settings, args: argparse.Namespace) -> int:
    from zoo.models.store import ModelStore

    store = ModelStore.of(settings.cache_dir)
    if args.action == "list":
        models = store.list()
        if args.models_json:
            print(json.dumps([{"ref": m.ref, "path": str(m.path), **m.card} for m in models], indent=2, default=str))
        elif not models:
            print(f"no trained models yet ({store.root}); train one with `{_prog()} train`")
        for m in models if not args.models_json else ():
            print(f"{m.ref}  {m.kind or m.task}  from {m.card.get('base_model')}  {_metrics(m.card.get('metrics'))}"
                  f"  {m.card.get('date', '')}")
        return 0
    name = _store_name(args.model)
    if args.action == "delete":
        store.delete(name)
        print(f"deleted trained:{name}")
        return 0
    if args.dir is None:
        from zoo.errors import InvalidInput

        raise InvalidInput("dir", None, "must be given", f"e.g. `{_prog()} models export {name} ./{name}`")
    print(store.export(name, args.dir))
    return 0


def _push_handler(settings: Settings, args: argparse.Namespace) -> int:
    from zoo.models.store import ModelStore

    store = ModelStore.of(settings.cache_dir)
    name = _store_name(args.model)
    model = store.get(name)
    files = store.files(name)
    if args.dry_run:
        print(f"would upload {len(files)} files from {model.path} to https://huggingface.co/{args.repo_id}"
              f"{' (private)' if args.private else ''}:")
        for f in files:
            print(f"  {f}  ({(model.path / f).stat().st_size} bytes)")
        return 0
    from huggingface_hub import HfApi

    api = HfApi(token=settings.remote_token)
    api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    api.upload_folder(folder_path=str(model.path), repo_id=args.repo_id, commit_message=f"Upload {model.ref}")
    print(f"pushed {model.ref} to https://huggingface.co/{args.repo_id}")
    return 0


def cmd_run(settings: Settings, task: str, argv: Sequence[str], out_dir: Path | None) -> int:
    """Run one plugin with flags built from its fields; print the outputs as JSON."""
    from zoo.runner import Zoo

    zoo = Zoo(settings)
    plugin = zoo.registry.get(task)
    parser = argparse.ArgumentParser(prog=f"{_prog()} run {plugin.task}", description=plugin.description)
    for f in plugin.fields():
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f, Bool):
            parser.add_argument(flag, dest=f.name, type=lambda s: s.lower() in {"1", "true", "yes", "on"},
                                default=None, help=f.info or f.title)
        elif isinstance(f, Number):
            parser.add_argument(flag, dest=f.name, type=float, default=None,
                                help=f"{f.info or f.title} (default {f.default})")
        elif isinstance(f, File) and f.multiple:  # --documents a.pdf b.md
            parser.add_argument(flag, dest=f.name, nargs="+", default=None, metavar="FILE", help=f.info or f.title)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=f.info or f.title)
    if plugin.models is not None:  # a plugin without a model has no --model (a composite has --<part>-model)
        parser.add_argument("--model", default=None, help=f"default {zoo.default_model(plugin)}")
    args = parser.parse_args(list(argv))
    values = {k: v for k, v in vars(args).items() if v is not None}
    # Whoever runs the CLI is the operator: their --model (or --<part>-model) counts as ZOO_MODEL_<TASK>.
    picked = {plugin.task: values.get("model")} | {task: values.get(part_model_name(part))
                                                   for part, task in plugin.uses.items()}
    picked = {task: ref.strip() for task, ref in picked.items() if ref and ref.strip()}
    if picked:
        overrides = {**zoo.settings.model_overrides, **picked}
        zoo = Zoo(zoo.settings.replace(model_overrides=overrides), registry=zoo.registry, models=zoo.models)
    result = zoo.run(plugin.task, **values)
    out = out_dir or Path(tempfile.mkdtemp(prefix="zoo-"))
    out.mkdir(parents=True, exist_ok=True)  # --out may name a folder that does not exist yet
    print(json.dumps({k: _jsonable(v, out, k) for k, v in result.items()}, indent=2, default=str))
    return 0


def space_builder() -> ModuleType:
    """The Space builder, zoo.space, imported only by the `space` commands (it needs huggingface_hub and yaml)."""
    import zoo.space

    return zoo.space


def _add_space_arguments(space: argparse.ArgumentParser) -> None:
    """`space build` and `space push`; declared here so that other commands never load the builder."""
    sub = space.add_subparsers(dest="space_command", required=True)
    p_build = sub.add_parser("build", help="write a complete, self-contained Space folder")
    p_build.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write: new, empty, or an earlier build")
    p_push = sub.add_parser("push", help="create the Space repo and upload a built folder (huggingface_hub)")
    p_push.add_argument("--repo-id", required=True, metavar="USER/NAME", help="USER/NAME of the Space")
    p_push.add_argument("--private", action="store_true", help="create the Space as private")
    p_push.add_argument("--dry-run", action="store_true", help="print the files that would be uploaded; no network")
    p_push.add_argument("--from", dest="source", type=Path, metavar="DIR", default=None,
                        help="a folder written by `space build` (default: build one now, with the options below)")
    for p in (p_build, p_push):
        # dest differs from the global --plugins, which selects the plugins of the running app
        p.add_argument("--plugins", dest="space_plugins", metavar="TASKS", default=None,
                       help="comma-separated tasks to put in the Space (default: every working plugin)")
        p.add_argument("--hardware", metavar="FLAVOR", default=None,
                       help="Spaces hardware: cpu-basic (default), cpu-upgrade, zero-a10g (ZeroGPU), t4-small, ...")
        p.add_argument("--title", default=None, help="the Space's title (default 'Model Zoo')")
        p.set_defaults(handler=_space_handler)


def _space_handler(settings: Settings, args: argparse.Namespace) -> int:
    builder = space_builder()
    if args.space_command == "build":
        return builder.cmd_build(settings, args)
    return builder.cmd_push(settings, args)


def _add_endpoint_arguments(p: argparse.ArgumentParser) -> None:
    """`serve-endpoint` flags: where to listen, plus the settings flags, accepted after the command too."""
    p.add_argument("--host", dest="endpoint_host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", dest="endpoint_port", type=int, default=8000, help="port (default 8000)")
    _add_settings_arguments(p, skip=("--host", "--port"))


def _add_settings_arguments(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """The settings flags on a subcommand, so that `zoo serve --port 8000` works as `zoo --port 8000 serve`."""
    for s in SETTINGS:
        if s.flag is None or s.flag in skip:
            continue
        # SUPPRESS: a flag given before the command must not be reset by this parser's default.
        if s.parse is parse_bool:
            p.add_argument(s.flag, dest=s.attr, action="store_const", const="1", default=argparse.SUPPRESS,
                           help=f"{s.help} (env {s.env})")
        else:
            p.add_argument(s.flag, dest=s.attr, default=argparse.SUPPRESS, help=f"{s.help} (env {s.env})")


def _add_new_plugin_arguments(sub: Any) -> None:
    """`new-plugin NAME --out DIR`: write a plugin package (zoo/scaffold.py)."""
    p = sub.add_parser("new-plugin", help="write a plugin package: pyproject, module, README, test (docs/plugins.md)")
    p.add_argument("name", metavar="NAME", help="the plugin's name, e.g. word-count (package zoo-NAME)")
    p.add_argument("--out", dest="new_out", required=True, type=Path, metavar="DIR", help="a new or empty folder")
    p.add_argument("--model-kind", dest="new_kind", default=None, metavar="KIND",
                   help="a single-model plugin on this registered kind (default: a model-less plugin)")
    p.add_argument("--task", dest="new_task", default=None, help="the task name (default: NAME)")
    p.add_argument("--model", dest="new_model", default=None, metavar="REF",
                   help="with --model-kind: the online default model (default tiny:KIND)")
    p.set_defaults(handler=_new_plugin_handler)


def _new_plugin_handler(settings: Settings, args: argparse.Namespace) -> int:
    from zoo.scaffold import cmd_new_plugin

    return cmd_new_plugin(args.name, args.new_out, model_kind=args.new_kind, task=args.new_task, model=args.new_model)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m zoo`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=_prog(), description="Model Zoo command line")
    build_arg_parser(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="plugins, tasks, default models and whether each is available here")
    p_list.add_argument("--json", action="store_true")
    p_run = sub.add_parser("run", help="run one plugin: python -m zoo run TASK --prompt ...", add_help=False)
    p_run.add_argument("task")
    p_run.add_argument("--out", type=Path, default=None, help="folder for image/audio outputs")
    _add_settings_arguments(sub.add_parser("serve", help="start the web app (same as python app.py)"))
    p_endpoint = sub.add_parser("serve-endpoint", help="serve the plugins in the formats huggingface_hub's "
                                "InferenceClient speaks, so other zoos can use this one (README: 'Beyond one machine')")
    _add_endpoint_arguments(p_endpoint)
    p_space = sub.add_parser("space", help="build a Hugging Face Space folder, or push one: space build|push --help")
    _add_space_arguments(p_space)
    _add_new_plugin_arguments(sub)
    _add_training_arguments(sub)
    args, rest = parser.parse_known_args(argv)
    try:
        settings = Settings.from_env().apply_args(args)
        if args.command == "list":
            return cmd_list(settings, args.json)
        if args.command == "run":
            return cmd_run(settings, args.task, rest, args.out)
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        if args.command == "serve":
            from zoo.coldstart import collector_paused

            with collector_paused():  # the imports and tabs outlive the requests (zoo/coldstart.py)
                from zoo.runner import Zoo
                from zoo.ui import build_demo, launch

                zoo = Zoo(settings)
                demo = build_demo(zoo)
            launch(demo, zoo)
            return 0
        if args.command == "serve-endpoint":
            from zoo.endpoint import serve
            from zoo.runner import Zoo

            serve(Zoo(settings), args.endpoint_host, args.endpoint_port)
            return 0
        return args.handler(settings, args)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


"""Fine-tuning jobs, and running one into the model store.

Every job is a module with `train(base, data, options, out_dir, report, cancel, resume=None) -> dict`
(see classify.py and lora.py). `run_job` is what the Fine-tune tab and `zoo train` share: it checks
the name and the operator's permission, takes the machine's training lock (one job at a time per
machine; others wait, and say so), runs the job in a work folder under the cache, and saves the best
model to the store with its card. Nothing here imports torch at import time.
"""

from __future__ import annotations

import importlib
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from zoo.errors import InvalidInput, ModelLoadError, ModelNotAllowed, ModelNotFound
from zoo.models.store import ModelStore, check_name


@dataclass(frozen=True)
class Job:
    """A training job: where its `train` lives, the task the result serves, its default base model."""

    name: str
    module: str
    function: str
    task: str  # the card's task: the tab the result appears in
    base: str  # default base model reference
    data_help: str
    run_options: tuple[str, ...] = ()  # settings the job takes among its options (not hyperparameters)
    kind: str = ""  # the model kind of the result: it is offered in every tab whose plugin runs that kind


#: The jobs this zoo can run, by name: the built-in ones register in plugins/fine_tune.py, and a
#: third-party package can add its own the same way (`register_job`).
JOBS: dict[str, Job] = {}


def register_job(job: Job, replace: bool = False) -> Job:
    """Make a training job available to the Fine-tune tab and `zoo train`."""
    if job.name in JOBS and not replace and JOBS[job.name] != job:
        raise InvalidInput("job", job.name, "is already registered", "pick another name, or pass replace=True")
    JOBS[job.name] = job
    return job


def get_job(name: str) -> Job:
    if name not in JOBS:
        raise InvalidInput("job", name, f"must be one of {', '.join(JOBS)}", f"pick one of {', '.join(JOBS)}")
    return JOBS[name]


def job_function(job: Job) -> Callable[..., dict]:
    """The job's `train`, imported now (lazily: torch, peft load only when a job runs)."""
    try:
        module = importlib.import_module(job.module)
    except ModuleNotFoundError as exc:
        if exc.name != job.module:
            raise
        raise ModelLoadError(f"The `{job.name}` job is not installed here (no module {job.module}).",
                             "update model-zoo to a version with LoRA training, or pick another job") from None
    return getattr(module, job.function)


def check_allowed(settings: Any) -> None:
    if not getattr(settings, "allow_training", True):
        raise ModelNotAllowed("Training is off on this server (a public Space: it writes to disk and uses the "
                              "whole CPU).", "the operator can set ZOO_ALLOW_TRAINING=1 to allow it")


def resolve_base(settings: Any, job: Job, base: str | None) -> tuple[str, Path]:
    """The base model reference and its files (a folder, or the GGUF file for LoRA)."""
    from zoo.models.manager import ModelManager

    ref = (base or "").strip() or job.base
    resolved = ModelManager(settings).resolve(ref)
    if resolved.source == "tiny":
        raise InvalidInput("base", ref, "is a random-weight tiny model", "train from a real model (the default)")
    return ref, resolved.path


def runs_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "training"


# --------------------------------------------------------------------------- one job per machine


class TrainingLock:
    """An exclusive lock file under the cache: one training job at a time on this machine, any process."""

    def __init__(self, cache_dir: Path):
        self.path = runs_dir(cache_dir) / "train.lock"

    @contextmanager
    def hold(self, cancel: threading.Event, waiting: Callable[[str], None] | None = None,
             poll: float = 0.5) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancel.is_set():
                        from zoo.errors import Cancelled

                        raise Cancelled("Stopped while waiting for another training job.") from None
                    if waiting is not None and not told:
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another job"
                        waiting(f"Waiting: one training job runs at a time on this machine ({holder}).")
                        told = True
                    time.sleep(poll)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def busy(self) -> bool:
        import fcntl

        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- a run into the store


def run_job(settings: Any, job_name: str, data: Path | str, name: str, base: str | None = None,
            options: dict[str, Any] | None = None, report: Callable[[dict], None] | None = None,
            cancel: threading.Event | None = None, resume_from: str | None = None,
            waiting: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train `job_name` on `data` and save the best model to the store as `name`; the result with the card.

    `resume_from` names an earlier run (stopped, or finished) to continue from its resume state.
    """
    from zoo import __version__
    from zoo.training.data import sha256

    check_allowed(settings)
    job = get_job(job_name)
    name = check_name(name)
    store = ModelStore.of(settings.cache_dir)
    store.refuse_existing(name)
    data = Path(data)
    if not data.is_file():
        raise InvalidInput("data", str(data), "is not a file", "give the path of a training file")
    resume = None
    if resume_from:
        if check_name(resume_from, "resume") == name:
            raise InvalidInput("name", name, "is the run being resumed", "give the resumed model a new name")
        resume = runs_dir(settings.cache_dir) / resume_from / "resume"
        if not (resume / "state.json").is_file():
            raise ModelNotFound(f"No stopped run `{resume_from}` to resume.",
                                "give the name of an earlier run (its resume state is kept under the cache's "
                                "training folder), or leave `resume` empty")
    base_ref, base_path = resolve_base(settings, job, base)
    train = job_function(job)
    cancel = cancel or threading.Event()
    report = report or (lambda _event: None)
    with TrainingLock(settings.cache_dir).hold(cancel, waiting):
        store.refuse_existing(name)  # taken while this one waited?
        work = runs_dir(settings.cache_dir) / name
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        started = time.perf_counter()
        given = dict(options or {})
        if "cache_dir" in job.run_options:  # where the LoRA job keeps the dequantised GGUF (shared with the chat tab)
            given.setdefault("cache_dir", settings.cache_dir)
        if "threads" in job.run_options and getattr(settings, "threads", 0):
            given.setdefault("threads", settings.threads)
        result = train(base_path, data, given, work, report, cancel, resume)
        seconds = time.perf_counter() - started
        model_dir = work / "model"
        if not (model_dir / "config.json").is_file():
            raise ModelLoadError(f"The {job.name} job wrote no model folder.", "see the server log")
        card = {
            "task": job.task, "kind": job.kind, "job": job.name, "base_model": base_ref,
            "base_model_id": _hub_id(base_ref),
            "data": {"file": data.name, "sha256": sha256(data), "bytes": data.stat().st_size,
                     "rows": result.get("rows", {})},
            "hyperparameters": result.get("hyperparameters", options or {}),
            "metrics": result.get("metrics", {}), "steps": result.get("steps"), "best_step": result.get("best_step"),
            "stopped": bool(result.get("stopped")), "train_seconds": round(seconds, 1),
            "labels": result.get("labels"), "resumed_from": resume_from or None, "zoo_version": __version__,
        }
        stored = store.save(name, model_dir, card)
        shutil.rmtree(model_dir, ignore_errors=True)  # the store has it; the resume state stays for `resume`
    return {**result, "ref": stored.ref, "card": stored.card, "path": str(stored.path), "seconds": seconds}


def _hub_id(ref: str) -> str | None:
    """The Hub id a base reference is (or is a packaged copy of), for the card's `base_model`."""
    from zoo.models.refs import parse_ref
    from zoo.models.sources import PACKAGED

    parsed = parse_ref(ref)
    if parsed.scheme == "hub":
        return parsed.name
    if parsed.scheme == "packaged" and parsed.name in PACKAGED and PACKAGED[parsed.name].mirrors:
        return PACKAGED[parsed.name].mirrors[0]
    return None

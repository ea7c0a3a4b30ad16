"""Text and token classification on an encoder (by default the packaged all-MiniLM-L6-v2).

Both jobs share one loop: AdamW with a linear decay (as transformers.Trainer's defaults), gradient
clipping at 1.0, dynamic padding per batch, a validation pass after every epoch, the best checkpoint
kept (in memory, written out at the end or on Stop), and a resume folder at the end and on Stop.
torch and transformers are imported inside the functions only.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.errors import InvalidInput
from zoo.training.data import load_text_classification, load_token_classification, split_indices

TEXT_DEFAULTS: dict[str, Any] = {"epochs": 4, "learning_rate": 1e-4, "batch_size": 16, "max_length": 128,
                                 "validation_split": 0.2, "seed": 0, "weight_decay": 0.0}
TOKEN_DEFAULTS: dict[str, Any] = {"epochs": 6, "learning_rate": 3e-4, "batch_size": 16, "max_length": 128,
                                  "validation_split": 0.2, "seed": 0, "weight_decay": 0.0}
Report = Callable[[dict[str, Any]], None]


def options_with_defaults(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The job's defaults, overridden by the given options (None / unknown keys refused)."""
    merged = dict(defaults)
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key not in defaults:
            raise InvalidInput(key, value, "is not an option of this job", f"use: {', '.join(defaults)}")
        merged[key] = type(defaults[key])(value) if isinstance(defaults[key], (int, float)) else value
    if merged["epochs"] < 1 or merged["batch_size"] < 1 or merged["max_length"] < 8:
        raise InvalidInput("options", {k: merged[k] for k in ("epochs", "batch_size", "max_length")},
                           "need epochs >= 1, batch_size >= 1 and max_length >= 8", "raise the value")
    if not 0 < merged["validation_split"] < 0.9:
        raise InvalidInput("validation_split", merged["validation_split"], "must be between 0 and 0.9", "use e.g. 0.2")
    if not merged["learning_rate"] > 0:
        raise InvalidInput("learning_rate", merged["learning_rate"], "must be above 0", "use e.g. 1e-4")
    return merged


@dataclass
class _Job:
    """What differs between the two jobs: the model class, the features, the metric."""

    kind: str  # "text" or "token"
    names: list[str]  # label / tag names, index = class id
    features: list[dict[str, Any]]  # one per row: input_ids, attention_mask, labels
    train_rows: list[int]
    val_rows: list[int]
    metric_name: str
    data_rows: int


def train_text(base: Path, data: Path, options: dict, out_dir: Path, report: Report, cancel: threading.Event,
               resume: Path | None = None) -> dict:
    """Fine-tune a sequence-classification head (job `text-classification`)."""
    opts = options_with_defaults(options, TEXT_DEFAULTS)
    rows = load_text_classification(data)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    label_id = {name: i for i, name in enumerate(rows.label_names)}
    enc = tok(rows.texts, truncation=True, max_length=opts["max_length"])
    features = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": label_id[rows.labels[i]]} for i in range(len(rows))]
    train_rows, val_rows = split_indices(rows.labels, opts["validation_split"], opts["seed"])
    job = _Job("text", rows.label_names, features, train_rows, val_rows, "accuracy", len(rows))
    return _train(job, tok, base, opts, out_dir, report, cancel, resume)


def train_tokens(base: Path, data: Path, options: dict, out_dir: Path, report: Report, cancel: threading.Event,
                 resume: Path | None = None) -> dict:
    """Fine-tune a token-classification head (job `token-classification`); the metric is entity F1."""
    opts = options_with_defaults(options, TOKEN_DEFAULTS)
    rows = load_token_classification(data)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    tag_id = {name: i for i, name in enumerate(rows.tag_names)}
    enc = tok(rows.tokens, is_split_into_words=True, truncation=True, max_length=opts["max_length"])
    features = []
    for i in range(len(rows)):
        labels, previous = [], None
        for word in enc.word_ids(i):
            labels.append(-100 if word is None or word == previous else tag_id[rows.tags[i][word]])
            previous = word
        features.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels})
    # Stratify on whether a sentence has entities at all.
    train_rows, val_rows = split_indices([any(t != "O" for t in tags) for tags in rows.tags],
                                         opts["validation_split"], opts["seed"])
    job = _Job("token", rows.tag_names, features, train_rows, val_rows, "f1", len(rows))
    return _train(job, tok, base, opts, out_dir, report, cancel, resume)


# --------------------------------------------------------------------------- the loop


def _collate(batch: list[dict[str, Any]], pad_id: int, token_labels: bool) -> dict[str, Any]:
    import torch

    width = max(len(f["input_ids"]) for f in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long) if token_labels else torch.tensor(
        [f["labels"] for f in batch], dtype=torch.long)
    for i, f in enumerate(batch):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        mask[i, :n] = 1
        if token_labels:
            labels[i, :n] = torch.tensor(f["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _load_model(job: _Job, base: Path) -> Any:
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    cls = AutoModelForSequenceClassification if job.kind == "text" else AutoModelForTokenClassification
    extra = {"problem_type": "single_label_classification"} if job.kind == "text" else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" is the point here, not a warning
    try:
        return cls.from_pretrained(str(base), num_labels=len(job.names), id2label=dict(enumerate(job.names)),
                                   label2id={n: i for i, n in enumerate(job.names)},
                                   ignore_mismatched_sizes=True, **extra)  # a classifier base gets a new head
    finally:
        hf_logging.set_verbosity(verbosity)


def _train(job: _Job, tok: Any, base: Path, opts: dict[str, Any], out_dir: Path, report: Report,
           cancel: threading.Event, resume: Path | None) -> dict:
    import torch
    from transformers import get_linear_schedule_with_warmup

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts["seed"])
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "best_metric": None, "best_val_loss": None,
                             "best_step": 0, "history": []}
    if resume is not None:
        resume = Path(resume)
        saved = json.loads((resume / "state.json").read_text())
        if saved.get("names") != job.names or saved.get("rows") != len(job.features):
            raise InvalidInput("resume", resume.name, "is a run on other data (other labels or rows)",
                               "resume with the same data file the stopped run used")
        state.update({k: saved[k] for k in state if k in saved})
        model = _load_model(job, resume / "model")
    else:
        model = _load_model(job, base)
    model.train()
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    bs = opts["batch_size"]
    per_epoch = math.ceil(len(job.train_rows) / bs)
    total = per_epoch * opts["epochs"]
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": opts["weight_decay"]},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0}]
    try:  # the fused kernel, as transformers.Trainer's default (adamw_torch_fused): 4x faster steps on a CPU
        optimizer = torch.optim.AdamW(groups, lr=opts["learning_rate"], fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(groups, lr=opts["learning_rate"])
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total)
    best_state: dict[str, Any] | None = None
    if resume is not None:
        optimizer.load_state_dict(torch.load(resume / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(resume / "scheduler.pt", weights_only=True))
        if (resume / "best.safetensors").is_file():
            from safetensors.torch import load_file

            best_state = load_file(str(resume / "best.safetensors"))

    val_batches = [_collate([job.features[i] for i in job.val_rows[k:k + 32]], pad_id, job.kind == "token")
                   for k in range(0, len(job.val_rows), 32)]
    last: dict[str, Any] = {}

    def evaluate() -> dict[str, Any]:
        nonlocal best_state, last
        model.eval()
        loss_sum, count, stats = 0.0, 0, {"correct": 0, "total": 0, "tp": 0, "pred": 0, "gold": 0}
        with torch.inference_mode():
            for batch in val_batches:
                out = model(**batch)
                n = batch["input_ids"].shape[0]
                loss_sum += float(out.loss) * n
                count += n
                _score(job, out.logits, batch["labels"], stats)
        model.train()
        metric = (stats["correct"] / max(stats["total"], 1) if job.kind == "text"
                  else (2 * stats["tp"] / (stats["pred"] + stats["gold"]) if stats["pred"] + stats["gold"] else 0.0))
        val_loss = loss_sum / max(count, 1)
        epoch = state["step"] / per_epoch
        entry = {"step": state["step"], "epoch": round(epoch, 3), "val_loss": val_loss,
                 "metric_name": job.metric_name, "metric": metric}
        if job.kind == "token":
            entry["precision"] = stats["tp"] / stats["pred"] if stats["pred"] else 0.0
            entry["recall"] = stats["tp"] / stats["gold"] if stats["gold"] else 0.0
        state["history"].append(entry)
        better = (state["best_metric"] is None or metric > state["best_metric"]
                  or (metric == state["best_metric"] and val_loss < state["best_val_loss"]))
        if better:
            state.update(best_metric=metric, best_val_loss=val_loss, best_step=state["step"])
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            last = entry
        report(dict(entry))
        return entry

    def save_resume() -> None:
        folder = out_dir / "resume"
        staging = out_dir / ".resume-new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging / "model")
        tok.save_pretrained(staging / "model")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        if best_state is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in best_state.items()}, str(staging / "best.safetensors"))
        (staging / "state.json").write_text(json.dumps({**state, "names": job.names, "rows": len(job.features),
                                                         "options": opts}, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)

    stopped = False
    started, first_step = time.perf_counter(), state["step"]
    while state["epoch"] < opts["epochs"] and not stopped:
        generator = torch.Generator().manual_seed(opts["seed"] * 1000 + state["epoch"])
        order = [job.train_rows[i] for i in torch.randperm(len(job.train_rows), generator=generator).tolist()]
        for b in range(state["batch"], per_epoch):
            if cancel.is_set():
                stopped = True
                break
            batch = _collate([job.features[i] for i in order[b * bs:(b + 1) * bs]], pad_id, job.kind == "token")
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["batch"] = b + 1
            report({"step": state["step"], "total_steps": total, "epoch": round(state["step"] / per_epoch, 3),
                    "train_loss": float(loss.detach()), "elapsed": time.perf_counter() - started,
                    "steps_this_run": state["step"] - first_step})
        if stopped:
            break
        state["epoch"] += 1
        state["batch"] = 0
        evaluate()
    if stopped and (not state["history"] or state["history"][-1]["step"] != state["step"]):
        evaluate()  # the weights reached so far compete for best too
    save_resume()  # at the end or on Stop: what `resume=` continues from (a finished run can train on)
    if best_state is not None:
        model.load_state_dict(best_state)
    model_dir = out_dir / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    metrics = {k: v for k, v in last.items() if k not in ("step", "epoch", "metric_name")}
    metrics = {job.metric_name: metrics.pop("metric", None), **metrics}
    return {"metrics": metrics, "steps": state["step"], "stopped": stopped, "best_step": state["best_step"],
            "rows": {"train": len(job.train_rows), "validation": len(job.val_rows)},
            "hyperparameters": opts, "labels": job.names, "history": state["history"]}


def _score(job: _Job, logits: Any, labels: Any, stats: dict[str, int]) -> None:
    """Add a batch's accuracy counts (text) or entity span counts (tokens) to `stats`."""
    preds = logits.argmax(dim=-1)
    if job.kind == "text":
        stats["correct"] += int((preds == labels).sum())
        stats["total"] += int(labels.numel())
        return
    for p_row, l_row in zip(preds.tolist(), labels.tolist()):
        gold = [job.names[l] for l in l_row if l != -100]
        pred = [job.names[p] for p, l in zip(p_row, l_row) if l != -100]
        g, p = entity_spans(gold), entity_spans(pred)
        stats["tp"] += len(g & p)
        stats["pred"] += len(p)
        stats["gold"] += len(g)


def entity_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, type) of each entity in a BIO (or plain) tag sequence; an I- after O starts one."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        head, _, tail = tag.partition("-")
        if not tail:  # "O" or a plain label
            head, tail = ("O", "") if tag.upper() == "O" else ("B", tag)
        continues = head == "I" and tail == kind
        if start is not None and not continues:
            spans.add((start, i, kind))
            start, kind = None, None
        if head in ("B", "I") and not continues:
            start, kind = i, tail
    return spans


def train(base: Path, data: Path, options: dict, out_dir: Path, report: Report, cancel: threading.Event,
          resume: Path | None = None) -> dict:
    """The `text-classification` job (zoo.training's shared signature)."""
    return train_text(base, data, options, out_dir, report, cancel, resume)

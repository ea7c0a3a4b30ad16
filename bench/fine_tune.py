"""Fine-tuning a text classifier: the zoo's job against a plain transformers.Trainer, side by side.

1,000 rows x 3 epochs on the packaged all-MiniLM-L6-v2, the same settings for both (batch 16,
learning rate 1e-4, linear decay, no warmup, no weight decay, gradient clipping 1.0, max length
128, a validation pass per epoch on the same 20% split, seed 0). Each run is a subprocess of its
own, so its RSS peak is its own. The zoo's figure is `zoo.training.run_job` end to end (data
checks, training, the model saved to the store with its card); the Trainer's is `trainer.train()`
plus `save_model`. `python -m bench --only finetune`, or alone:

    python -m bench.fine_tune --rows 1000 --epochs 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SETTINGS = {"epochs": 3, "learning_rate": 1e-4, "batch_size": 16, "max_length": 128, "validation_split": 0.2,
            "seed": 0}
TARGET_SECONDS = 180.0
TARGET_RATIO = 1.1


def write_rows(path: Path, rows: int) -> Path:
    """`rows` sentiment rows: the example set's sentences, varied by a prefix so that no two are equal."""
    from zoo.training.examples import sentiment_rows

    base = sentiment_rows()
    prefixes = ["", "Honestly, ", "To be fair, ", "In short: ", "Well, ", "I must say ", "Overall, ", "Frankly, ",
                "All in all, "]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(rows):
            text, label = base[i % len(base)]
            prefix = prefixes[(i // len(base)) % len(prefixes)]
            writer.writerow([prefix + (text[0].lower() + text[1:] if prefix else text), label])
    return path


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_zoo(data: Path, cache: Path) -> dict[str, Any]:
    from zoo.settings import Settings
    from zoo.training import run_job

    settings = Settings(offline=True, cache_dir=cache)
    started = time.perf_counter()
    result = run_job(settings, "text-classification", data, f"bench-{os.getpid()}", options=dict(SETTINGS))
    return {"seconds": time.perf_counter() - started, "rss_mb": _peak_rss_mb(),
            "accuracy": result["card"]["metrics"]["accuracy"], "steps": result["steps"]}


def run_trainer(data: Path, out: Path) -> dict[str, Any]:
    """The same job as a user would write it with transformers.Trainer."""
    started = time.perf_counter()
    import numpy as np
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from zoo.models.sources import packaged_path
    from zoo.training.data import load_text_classification, split_indices

    base = str(packaged_path("all-minilm-l6-v2"))
    rows = load_text_classification(data)
    names = rows.label_names
    tok = AutoTokenizer.from_pretrained(base)
    enc = tok(rows.texts, truncation=True, max_length=SETTINGS["max_length"])
    ids = {n: i for i, n in enumerate(names)}
    features = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": ids[rows.labels[i]]} for i in range(len(rows))]
    train_rows, val_rows = split_indices(rows.labels, SETTINGS["validation_split"], SETTINGS["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(names),
                                                               id2label=dict(enumerate(names)),
                                                               label2id=ids)
    args = TrainingArguments(output_dir=str(out), num_train_epochs=SETTINGS["epochs"],
                             per_device_train_batch_size=SETTINGS["batch_size"], per_device_eval_batch_size=32,
                             learning_rate=SETTINGS["learning_rate"], lr_scheduler_type="linear", warmup_steps=0,
                             weight_decay=0.0, max_grad_norm=1.0, eval_strategy="epoch", save_strategy="no",
                             logging_steps=10, report_to=[], seed=SETTINGS["seed"], use_cpu=True,
                             disable_tqdm=True, dataloader_num_workers=0)

    def accuracy(pred: Any) -> dict[str, float]:
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    trainer = Trainer(model=model, args=args, train_dataset=[features[i] for i in train_rows],
                      eval_dataset=[features[i] for i in val_rows], data_collator=DataCollatorWithPadding(tok),
                      compute_metrics=accuracy)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    return {"seconds": time.perf_counter() - started, "rss_mb": _peak_rss_mb(),
            "accuracy": metrics["eval_accuracy"], "steps": trainer.state.global_step}


def _child(which: str, data: Path, folder: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.fine_tune", "--child", which, "--data", str(data),
                          "--folder", str(folder), "--epochs", str(SETTINGS["epochs"])], cwd=ROOT, capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{which} run failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(runs: int = 1, rows: int = 1000, epochs: int = 3) -> list[dict[str, Any]]:
    """Zoo and Trainer alternately, `runs` times each (medians); the rows of bench's table."""
    import statistics

    SETTINGS["epochs"] = epochs
    folder = Path(tempfile.mkdtemp(prefix="zoo-bench-ft-"))
    data = write_rows(folder / "rows.csv", rows)
    zoo, plain = [], []
    for i in range(max(1, runs)):  # alternate which goes first: a shared machine's load drifts
        order = [("zoo", zoo), ("trainer", plain)]
        for which, into in order if i % 2 == 0 else order[::-1]:
            into.append(_child(which, data, folder / f"{which}-{i}"))
    z = statistics.median(r["seconds"] for r in zoo)
    t = statistics.median(r["seconds"] for r in plain)
    z_rss = max(r["rss_mb"] for r in zoo)
    t_rss = max(r["rss_mb"] for r in plain)
    what = f"{rows} rows x {epochs} epochs, MiniLM-L6, batch 16"
    cores = os.cpu_count()
    return [
        {"section": "fine-tune", "name": f"text classification, zoo job ({what})", "value": z, "unit": "s",
         "baseline": "transformers.Trainer, same data and settings", "baseline_value": t, "ratio": z / t,
         "target": f"<= {TARGET_SECONDS:.0f} s on 2 cores; ratio <= {TARGET_RATIO}",
         "met": z <= TARGET_SECONDS and z / t <= TARGET_RATIO, "runs": len(zoo),
         "note": f"{cores} cores; validation accuracy zoo {zoo[0]['accuracy']:.3f}, Trainer {plain[0]['accuracy']:.3f}; "
                 f"{zoo[0]['steps']} steps each"},
        {"section": "fine-tune", "name": "text classification, RSS peak of the zoo job", "value": z_rss, "unit": "MB",
         "baseline": "transformers.Trainer RSS peak", "baseline_value": t_rss, "ratio": z_rss / t_rss,
         "runs": len(zoo), "note": "each run in a process of its own (ru_maxrss)"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fine_tune")
    parser.add_argument("--child", choices=("zoo", "trainer"))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    SETTINGS["epochs"] = args.epochs
    if args.child:
        args.folder.mkdir(parents=True, exist_ok=True)
        result = run_zoo(args.data, args.folder) if args.child == "zoo" else run_trainer(args.data, args.folder)
        print(json.dumps(result))
        return 0
    for row in measure(args.runs, args.rows, args.epochs):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

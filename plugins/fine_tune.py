"""Fine-tune: teach a model on your own data, then use it in its tab as `trained:NAME`.

Three jobs (zoo/training): a text classifier or a named-entity tagger on an encoder (the packaged
all-MiniLM-L6-v2 by default), and LoRA instruction tuning of the packaged SmolLM2. The job runs in
a thread of the server; the tab streams its progress with an ETA and a live plot of the training
and validation loss and the metric. Stop keeps the best checkpoint so far (saved to the store, and
resumable); one job trains at a time per machine (a lock under the cache; the tab's queue shows a
second request its position). Off on a public Space unless the operator sets ZOO_ALLOW_TRAINING=1.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator

from zoo.errors import ZooError
from zoo.plugin import Choice, File, Float, Int, Json, Plot, Plugin, RunContext, Text
from plugins._lm import CAUSAL_LM
from plugins.kinds import TEXT_CLASSIFICATION, TOKEN_CLASSIFICATION
from zoo.training import JOBS, Job, check_allowed, register_job


def _kind_name(kind: object) -> str:
    return str(getattr(kind, "name", kind))


# The built-in jobs. A stored result is offered in every tab that runs its model kind: a tuned
# language model in Chat and Text generation both.
register_job(Job("text-classification", "zoo.training.classify", "train_text", "text-classification",
                 "packaged:all-minilm-l6-v2", "CSV or JSONL with `text,label`", kind=_kind_name(TEXT_CLASSIFICATION)))
register_job(Job("token-classification", "zoo.training.classify", "train_tokens", "token-classification",
                 "packaged:all-minilm-l6-v2", "CoNLL (`token tag` lines) or JSONL with `tokens,tags`",
                 kind=_kind_name(TOKEN_CLASSIFICATION)))
register_job(Job("lm-lora", "zoo.training.lora", "train", "text-generation", "packaged:smollm2-135m-instruct",
                 'JSONL of {"messages": [...]} or {"prompt", "response"}', ("cache_dir", "threads"),
                 kind=_kind_name(CAUSAL_LM)))

UPDATE_SECONDS = 0.5  # between two streamed updates: the plot redraws each time


def _examples() -> tuple[dict[str, Any], ...]:
    from zoo.training.examples import write_example

    try:
        return ({"job": "text-classification", "data": str(write_example("sentiment")), "name": "my-sentiment"},
                {"job": "token-classification", "data": str(write_example("entities")), "name": "my-entities"},
                {"job": "lm-lora", "data": str(write_example("instructions")), "name": "my-velmora-chat"})
    except OSError:  # a read-only temp folder: no examples rather than no tab
        return ()


class FineTune(Plugin):
    """Train a classifier, an entity tagger or a LoRA chat model on an uploaded file."""

    api_version = 2
    task = "fine-tune"
    title = "Fine-tune"
    group = "train"
    description = ("Upload a small dataset (or click an example), name the model and press Run. When it is done "
                   "the model is `trained:NAME` in the matching tab's model list (Text classification, Named "
                   "entities, or Chat and Text generation), over the API and in `zoo list`. Data: "
                   + "; ".join(f"**{j.name}**: {j.data_help}" for j in JOBS.values()) + ".")
    order = 95
    mcp = False  # not an MCP tool: a training job takes the whole CPU for minutes and writes to the cache
    models = None  # runs in the server: the job loads its own base model
    inputs = (
        Choice("job", "text-classification", choices=tuple(JOBS), label="Job"),
        File("data", file_types=(".csv", ".jsonl", ".json", ".conll", ".txt"), label="Training data"),
        Text("name", placeholder="my-sentiment", label="Name of the new model",
             info="lower-case letters, digits, . _ -; a new name (models are never overwritten)"),
    )
    options = (
        Text("base", "", required=False, label="Base model",
             info="empty = the job's default (packaged all-MiniLM-L6-v2, or SmolLM2 for lm-lora)"),
        Int("epochs", 0, 0, 100, info="0 = the job's default (4 text, 6 entities, LoRA: its own)"),
        Float("learning_rate", 0.0, 0.0, None, info="0 = the job's default (1e-4 text, 3e-4 entities)"),
        Int("batch_size", 0, 0, 256, info="0 = the job's default"),
        Int("max_length", 0, 0, 2048, info="tokens per example; 0 = the job's default (128)"),
        Float("validation_split", 0.0, 0.0, 0.9, step=0.05, info="share held out for validation; 0 = default (0.2)"),
        Int("seed", 0, 0, 2**31 - 1, info="shuffling, split and head initialisation"),
        Int("lora_rank", 0, 0, 256, info="lm-lora only; 0 = its default"),
        Float("lora_alpha", 0.0, 0.0, 1024.0, info="lm-lora only; 0 = its default"),
        Text("lora_targets", "", required=False, info="lm-lora only: comma-separated module names; empty = default"),
        Text("resume", "", required=False, label="Resume from run",
             info="name of a stopped (or finished) run to continue; the data must be the same file"),
    )
    outputs = (
        Text("status", label="Status", lines=4),
        Plot("curves", label="Loss and metric", x="step", y="value", color="series"),
        Json("card", label="Model card"),
    )
    examples = _examples()
    translations = {
        "zh-CN": {
            "Fine-tune": "微调",
            ("Upload a small dataset (or click an example), name the model and press Run. When it is done the model "
             "is `trained:NAME` in the matching tab's model list (Text classification, Named entities, or Chat and "
             "Text generation), over the API and in `zoo list`. Data: **text-classification**: CSV or JSONL with "
             "`text,label`; **token-classification**: CoNLL (`token tag` lines) or JSONL with `tokens,tags`; "
             '**lm-lora**: JSONL of {"messages": [...]} or {"prompt", "response"}.'):
                ("上传一个小数据集（或点击一个示例），为模型命名，然后点击运行（Run）。完成后，"
                 "该模型以 `trained:NAME` 出现在对应标签页的模型列表中（文本分类、命名实体识别，或对话和文本生成），"
                 "也可通过 API 和 `zoo list` 使用。数据格式：**text-classification**："
                 "含 `text,label` 的 CSV 或 JSONL；**token-classification**：CoNLL（`token tag` 格式的行）"
                 "或含 `tokens,tags` 的 JSONL；**lm-lora**："
                 '由 {"messages": [...]} 或 {"prompt", "response"} 组成的 JSONL。'),
            "Job": "任务类型",
            "Training data": "训练数据",
            "Name of the new model": "新模型的名称",
            "lower-case letters, digits, . _ -; a new name (models are never overwritten)":
                "小写字母、数字、. _ -；须为新名称（不会覆盖已有模型）",
            "my-sentiment": "例如：my-sentiment",
            "Base model": "基础模型",
            "empty = the job's default (packaged all-MiniLM-L6-v2, or SmolLM2 for lm-lora)":
                "留空 = 该任务的默认值（随附的 all-MiniLM-L6-v2，lm-lora 则为 SmolLM2）",
            "Epochs": "训练轮数",
            "0 = the job's default (4 text, 6 entities, LoRA: its own)":
                "0 = 该任务的默认值（文本 4，实体 6，LoRA：其自身默认值）",
            "Learning rate": "学习率",
            "0 = the job's default (1e-4 text, 3e-4 entities)": "0 = 该任务的默认值（文本 1e-4，实体 3e-4）",
            "Batch size": "批大小",
            "0 = the job's default": "0 = 该任务的默认值",
            "Max length": "最大长度",
            "tokens per example; 0 = the job's default (128)": "每个样本的 token 数；0 = 该任务的默认值（128）",
            "Validation split": "验证集比例",
            "share held out for validation; 0 = default (0.2)": "留作验证的比例；0 = 默认值（0.2）",
            "shuffling, split and head initialisation": "用于数据打乱、数据划分和分类头初始化",
            "Lora rank": "LoRA 秩",
            "lm-lora only; 0 = its default": "仅限 lm-lora；0 = 其默认值",
            "Lora alpha": "LoRA alpha 系数",
            "Lora targets": "LoRA 目标模块",
            "lm-lora only: comma-separated module names; empty = default":
                "仅限 lm-lora：用逗号分隔的模块名；留空 = 默认值",
            "Resume from run": "从已有运行继续",
            "name of a stopped (or finished) run to continue; the data must be the same file":
                "要继续的已停止（或已完成）运行的名称；数据必须是同一个文件",
            "Status": "状态",
            "Loss and metric": "损失与指标",
            "Model card": "模型卡片",
        },
    }

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        from zoo.settings import Settings
        from zoo.training import run_job

        settings = Settings.from_env()
        settings = settings.replace(allow_training=ctx.limits.allow_training,
                                    cache_dir=ctx.limits.cache_dir or settings.cache_dir)
        check_allowed(settings)
        _vet_base(values.get("base") or "", settings)
        options = {k: values[k] for k in ("epochs", "learning_rate", "batch_size", "max_length",
                                          "validation_split", "seed", "lora_rank", "lora_alpha", "lora_targets")
                   if values.get(k) not in (None, "", 0, 0.0) or (k == "seed" and values.get(k) is not None)}
        if values["job"] != "lm-lora":
            options = {k: v for k, v in options.items() if not k.startswith("lora_")}
        events: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = run_job(settings, values["job"], values["data"], values["name"],
                                            base=values.get("base") or None, options=options,
                                            report=events.put, cancel=ctx.cancel_event,
                                            resume_from=values.get("resume") or None,
                                            waiting=lambda text: events.put({"waiting": text}))
            except BaseException as exc:  # handed to the generator, which raises it in the request
                outcome["error"] = exc
            finally:
                events.put(None)

        ctx.start_worker(work, name=f"zoo-train-{values['name']}")
        rows: list[dict[str, Any]] = []
        status = f"Starting {values['job']} on {_base_name(values)}…"
        last: dict[str, Any] = {}
        shown = 0.0
        done = False
        while not done:
            try:
                event = events.get(timeout=UPDATE_SECONDS)
            except queue.Empty:
                event = {}
            while event is not None:  # drain what arrived
                status = self._take(event, rows, last) or status
                try:
                    event = events.get_nowait()
                except queue.Empty:
                    break
            done = event is None
            fraction = last["step"] / last["total_steps"] if last.get("total_steps") else None
            if ctx.on_progress is not None and not ctx.cancelled:
                ctx.on_progress(fraction, status)
            now = time.monotonic()
            if not done and now - shown >= UPDATE_SECONDS and not ctx.cancelled:
                shown = now
                yield {"status": status, "curves": list(rows), "card": None}
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        card = result["card"]
        metrics = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in card["metrics"].items())
        tabs = _tabs_for(card.get("job", ""))
        head = (f"Stopped at step {result['steps']}: the best checkpoint (step {result['best_step']}) is saved"
                if result.get("stopped") else f"Done in {result['seconds']:.0f} s ({result['steps']} steps)")
        status = (f"{head} as {result['ref']}. Validation: {metrics}.\nPick it in the {tabs} tab "
                  f"(or over the API: model=\"{result['ref']}\"). "
                  + (f"Continue it with resume={card['name']} and a new name." if result.get("stopped") else ""))
        yield {"status": status, "curves": list(rows), "card": card}

    def build_ui(self, ui: Any) -> bool:
        """The generated tab; with ZOO_OPERATORS, operators only (Sign in with Hugging Face, zoo/operators.py)."""
        from zoo.operators import gate_tab

        gate_tab(ui, "train models")
        return False

    @staticmethod
    def _take(event: dict[str, Any], rows: list[dict[str, Any]], last: dict[str, Any]) -> str | None:
        """Fold one report from the job into the plot rows; the status line it gives, if any."""
        if not event:
            return None
        if "waiting" in event:
            return str(event["waiting"])
        step = event.get("step", 0)
        if "train_loss" in event:
            rows.append({"step": step, "value": float(event["train_loss"]), "series": "train loss"})
            last.update(event)
        if "val_loss" in event and event["val_loss"] is not None:
            rows.append({"step": step, "value": float(event["val_loss"]), "series": "validation loss"})
        if event.get("metric") is not None:
            rows.append({"step": step, "value": float(event["metric"]),
                         "series": f"validation {event.get('metric_name') or 'metric'}"})
            last["metric"], last["metric_name"] = event["metric"], event.get("metric_name")
        if not last.get("total_steps"):
            return None
        total = last["total_steps"]
        parts = [f"Step {last['step']}/{total}", f"epoch {last.get('epoch', 0):.2f}",
                 f"loss {last.get('train_loss', float('nan')):.4f}"]
        if last.get("metric") is not None:
            parts.append(f"{last.get('metric_name')} {last['metric']:.3f}")
        done_here, elapsed = last.get("steps_this_run"), last.get("elapsed")
        if done_here and elapsed:
            parts.append(f"ETA {_clock(elapsed / done_here * (total - last['step']))}")
        return " · ".join(parts)


def _vet_base(base: str, settings: Any) -> None:
    """A visitor's base model: no local paths (files on the server), no custom ids where they are off."""
    from zoo.errors import ModelNotAllowed
    from zoo.models.refs import parse_ref

    if not base.strip():
        return
    parsed = parse_ref(base)
    if parsed.is_local_file:
        raise ModelNotAllowed(f"Local path `{base}` cannot be chosen from the app as a base model.",
                              "the operator can train from a local folder with `zoo train JOB --base PATH ...`")
    if parsed.scheme == "hub" and not settings.allow_custom_models:
        raise ModelNotAllowed(f"Custom base model `{base}` is not allowed on this server.",
                              "leave the base model empty for the job's default")


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _base_name(values: dict[str, Any]) -> str:
    return values.get("base") or JOBS[values["job"]].base


#: Where each built-in job's result shows up (any tab running its model kind; see zoo.models.store.serves).
TABS_OF_JOB = {"text-classification": "Text classification", "token-classification": "Named entities",
               "lm-lora": "Chat and Text generation"}


def _tabs_for(job: str) -> str:
    return TABS_OF_JOB.get(job, "matching")


__all__ = ["FineTune", "ZooError"]

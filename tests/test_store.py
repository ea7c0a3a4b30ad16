"""The model store and `trained:NAME`: names, atomic saves that never overwrite, resolution, the
tabs' pickers and check_model, `zoo list` / `zoo models` / `zoo push-model --dry-run`, and a stored
sequence-classification folder running in the Text classification tab."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import InvalidInput, ModelNotAllowed, ModelNotFound
from zoo.models.refs import parse_ref
from zoo.models.store import ModelStore, check_name
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _fake_model(folder: Path, labels: tuple[str, ...] = ("bad", "good")) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": dict(enumerate(labels))}))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def store_zoo(settings: Settings, tmp_path: Path) -> Zoo:
    return Zoo(settings.replace(tiny=True, cache_dir=tmp_path / "cache", isolation="inline"))


@pytest.mark.parametrize("name", ["a", "my-sentiment", "v1.2_final", "x" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name
    assert parse_ref(f"trained:{name}").scheme == "trained"


@pytest.mark.parametrize("name", ["", "..", "a/b", "../etc", "a..b", "My-Model", "-x", ".hidden", "x" * 65, "a b", 3])
def test_bad_names_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(InvalidInput, match="lower-case letters") as err:
        check_name(name)
    assert "no paths" in err.value.fix
    if isinstance(name, str) and name:
        with pytest.raises(InvalidInput, match="trained:<name>"):
            parse_ref(f"trained:{name}")


def test_save_is_atomic_and_never_overwrites(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "trained")
    model = _fake_model(tmp_path / "m")
    saved = store.save("first", model, {"task": "text-classification", "metrics": {"accuracy": 0.9}})
    assert saved.ref == "trained:first" and saved.serves("text-classification", None)
    card = json.loads((saved.path / "card.json").read_text())
    assert card["name"] == "first" and card["date"] and card["metrics"] == {"accuracy": 0.9}
    readme = (saved.path / "README.md").read_text()
    assert "pipeline_tag: text-classification" in readme and "accuracy: 0.9" in readme
    with pytest.raises(InvalidInput, match="already a trained model") as err:
        store.save("first", model, {"task": "text-classification"})
    assert "pick another name or delete it" in err.value.fix
    assert (saved.path / "model.safetensors").read_bytes() == b"weights"  # untouched
    assert [p.name for p in store.root.iterdir()] == ["first"]  # no staging folder left behind
    assert store.files("first") == ["README.md", "card.json", "config.json", "model.safetensors"]
    exported = store.export("first", tmp_path / "out")
    assert (exported / "card.json").is_file()
    with pytest.raises(InvalidInput, match="new or empty folder"):
        store.export("first", tmp_path / "out")
    store.delete("first")
    assert store.list() == [] and not (store.root / "first").exists()
    with pytest.raises(ModelNotFound, match="No trained model `trained:first`"):
        store.get("first")


def test_trained_models_reach_their_tab_only(store_zoo: Zoo, tmp_path: Path) -> None:
    store = ModelStore.of(store_zoo.settings.cache_dir)
    store.save("sent", _fake_model(tmp_path / "a"), {"task": "text-classification"})
    store.save("chatty", _fake_model(tmp_path / "b"), {"task": "text-generation", "kind": "causal-lm"})
    tc = store_zoo.registry.get("text-classification")
    ner = store_zoo.registry.get("token-classification")
    assert "trained:sent" in store_zoo.model_choices(tc) and "trained:chatty" not in store_zoo.model_choices(tc)
    assert not [m for m in store_zoo.model_choices(ner) if m.startswith("trained:")]
    # a tuned language model serves both the Chat and the Text generation tabs
    for task in ("text-generation", "conversational"):
        plugin = store_zoo.registry.get(task)
        assert "trained:chatty" in store_zoo.model_choices(plugin)
        assert store_zoo.check_model(plugin, "trained:chatty") == "trained:chatty"
    assert store_zoo.check_model(tc, "trained:sent") == "trained:sent"
    with pytest.raises(ModelNotAllowed, match="is a text-classification model, so Named entities") as err:
        store_zoo.check_model(ner, "trained:sent")
    assert "pick it in the Text classification tab" in err.value.fix
    with pytest.raises(ModelNotFound, match="trained:sent, trained:chatty|trained:chatty, trained:sent"):
        store_zoo.check_model(tc, "trained:nope")
    # visitors may pick stored models even where custom ids are off (a Space)
    locked = Zoo(store_zoo.settings.replace(allow_custom_models=False), registry=store_zoo.registry)
    assert locked.check_model(tc, "trained:sent") == "trained:sent"
    resolved = store_zoo.models.resolve("trained:sent")
    assert resolved.path == store.path("sent") and resolved.source == "trained"
    ok, where = store_zoo.models.availability("trained:sent")
    assert ok and "trained here" in where


def test_a_stored_classifier_runs_in_the_text_classification_tab(store_zoo: Zoo) -> None:
    """A sequence-classification folder with id2label, saved to the store, loads through the tab's model kind."""
    import transformers

    tiny = store_zoo.models.resolve("tiny:text-classification").path
    folder = store_zoo.settings.cache_dir / "staging"
    shutil.copytree(tiny, folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    config.id2label = {0: "sad", 1: "happy"}
    config.label2id = {"sad": 0, "happy": 1}
    config.save_pretrained(folder)
    ModelStore.of(store_zoo.settings.cache_dir).save("moods", folder, {"task": "text-classification"})
    out = store_zoo.run("text-classification", text="What a day.", model="trained:moods")
    assert set(out["labels"]) == {"sad", "happy"} and "trained:moods: 2 labels" in out["note"]


def test_cli_lists_exports_pushes_and_deletes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ModelStore.of(cache).save("cli-model", _fake_model(tmp_path / "m"),
                              {"task": "text-classification", "base_model": "packaged:all-minilm-l6-v2",
                               "metrics": {"accuracy": 0.95}})
    env = {"ZOO_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "ZOO_PLUGIN_SOURCES": "builtin", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}

    def zoo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    listed = zoo("models")
    assert listed.returncode == 0 and "trained:cli-model  text-classification" in listed.stdout
    assert "accuracy 0.950" in listed.stdout
    push = zoo("push-model", "trained:cli-model", "--repo-id", "me/cli-model", "--dry-run")
    assert push.returncode == 0, push.stderr
    assert "would upload 4 files" in push.stdout and "model.safetensors" in push.stdout and "README.md" in push.stdout
    out = tmp_path / "exported"
    assert zoo("models", "export", "cli-model", str(out)).returncode == 0 and (out / "config.json").is_file()
    assert "trained:cli-model" in zoo("list").stdout
    assert json.loads(zoo("list", "--json").stdout)["trained"][0]["ref"] == "trained:cli-model"
    bad = zoo("models", "delete", "../etc")
    assert bad.returncode == 2 and "no paths" in bad.stderr
    assert zoo("models", "delete", "trained:cli-model").returncode == 0
    assert "no trained models yet" in zoo("models").stdout


def test_training_is_off_on_a_space_unless_allowed() -> None:
    assert Settings.from_env({}).allow_training
    assert not Settings.from_env({"SPACE_ID": "me/zoo"}).allow_training
    assert Settings.from_env({"SPACE_ID": "me/zoo", "ZOO_ALLOW_TRAINING": "1"}).allow_training
    assert not Settings.from_env({"ZOO_ALLOW_TRAINING": "0"}).allow_training


def test_the_pickers_offer_a_model_trained_after_the_page_loaded(store_zoo: Zoo, tmp_path: Path) -> None:
    """Opening a tab (or focusing its picker) refreshes the choices: a new trained model appears at once."""
    from zoo.i18n import english
    from zoo.ui import build_demo

    demo = build_demo(store_zoo)
    tc = store_zoo.registry.get("text-classification")
    refreshers = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == "choices"
                  and fn.outputs and any(english(getattr(o, "label", "")) == "Model" for o in fn.outputs)]
    assert refreshers  # one per tab event (select, focus) of every tab with a picker
    ModelStore.of(store_zoo.settings.cache_dir).save("fresh", _fake_model(tmp_path / "f"),
                                                     {"task": "text-classification"})
    offered = []
    for fn in refreshers:
        update = fn.fn(store_zoo.default_model(tc))
        offered.append([c[0] if isinstance(c, tuple) else c for c in update.choices])
    assert any("trained:fresh" in choices for choices in offered)
    assert not all("trained:fresh" in choices for choices in offered)  # only the text-classification tab's

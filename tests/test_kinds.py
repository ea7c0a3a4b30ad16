"""Open model kinds: a kind registered by a third party loads, runs as a tab (in a worker too) and explains itself.

The third-party kind here is object detection: a tiny seeded YOLOS (a ViT with detection
tokens) built through the kind's own `tiny` builder, loaded by the transformers family
with AutoModelForObjectDetection. Its builder and plugin live at module level, so a
worker process imports them by name, as it would a package's.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from zoo.errors import InvalidInput, ModelLoadError, ModelNotFound, PluginLoadError
from zoo.kinds import (KindClash, ModelKind, UnknownKind, get_kind, register_kind, registered_kinds,
                       unregister_kind)
from zoo.models.manager import ModelManager
from zoo.plugin import Float, Image, Json, ModelChoices, Plugin, RunContext
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("cat", "dog", "bicycle")


def build_tiny_detector(out_dir: Path) -> None:
    """A tiny YOLOS detector (32x32 input, 5 detection tokens, 3 labels) with its image processor."""
    import transformers
    from transformers import YolosConfig, YolosForObjectDetection

    from zoo.tiny import seeded

    # The PIL backend: the default YolosImageProcessor needs torchvision.
    processor_class = getattr(transformers, "YolosImageProcessorPil", None) or transformers.YolosImageProcessor
    processor_class(size={"height": 32, "width": 32}, do_pad=False).save_pretrained(out_dir)
    config = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                         image_size=[32, 32], patch_size=8, num_detection_tokens=5,
                         id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    seeded()
    YolosForObjectDetection(config).save_pretrained(out_dir)


OBJECT_DETECTION = ModelKind("toy-detection", auto_class="AutoModelForObjectDetection", processor="processor",
                             tiny=build_tiny_detector, description="an object detector")


class Detector(Plugin):
    """Boxes and labels of what an image shows."""

    api_version = 2  # Plugin API 2 (zoo.API_VERSION once that lands)
    task = "toy-detection"
    title = "Toy detection"
    model_kind = OBJECT_DETECTION
    models = ModelChoices(online="tiny:toy-detection", tiny="tiny:toy-detection")
    inputs = (Image("image"),)
    options = (Float("threshold", 0.0, 0.0, 1.0),)
    outputs = (Json("detections"),)

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle, image = model.model, values["image"]
        inputs = bundle.processor(images=image, return_tensors="pt")
        with torch.no_grad():
            out = bundle.model(**inputs)
        found = bundle.processor.post_process_object_detection(out, threshold=values["threshold"],
                                                               target_sizes=[(image.height, image.width)])[0]
        detections = [{"label": bundle.model.config.id2label[int(label)], "score": round(float(score), 6),
                       "box": [round(float(x), 3) for x in box]}
                      for score, label, box in zip(found["scores"], found["labels"], found["boxes"])]
        return {"detections": detections, "pid": os.getpid()}


@pytest.fixture
def detection() -> Iterator[ModelKind]:
    """The toy-detection kind, registered for one test (as a plugin package's import would)."""
    register_kind(OBJECT_DETECTION)
    yield OBJECT_DETECTION
    unregister_kind(OBJECT_DETECTION.name)


def _picture() -> Any:
    from PIL import Image as PILImage

    return PILImage.new("RGB", (64, 48), (200, 40, 40))


def test_a_registered_kind_loads_its_tiny_model_through_the_transformers_family(settings: Settings,
                                                                               detection: ModelKind) -> None:
    assert get_kind("toy-detection") is detection and detection in registered_kinds()
    loaded = ModelManager(settings.replace(isolation="inline")).load("tiny:toy-detection", "toy-detection")
    assert loaded.family == "transformers" and loaded.kind == "toy-detection" and loaded.is_tiny
    assert type(loaded.model.model).__name__ == "YolosForObjectDetection"
    assert type(loaded.model.processor).__name__.startswith("YolosImageProcessor")
    assert loaded.model.model.config.id2label == dict(enumerate(LABELS))
    assert (settings.cache_dir / "tiny" / "toy-detection" / ".zoo-tiny-complete").is_file()


def test_a_plugin_brings_its_kind_and_runs_in_a_worker(settings: Settings) -> None:
    registry = Registry()
    try:
        registry.register(Detector, "tests.test_kinds")  # registers OBJECT_DETECTION too
        assert get_kind("toy-detection") is OBJECT_DETECTION
        values = {"image": _picture(), "threshold": 0.0}
        inline = Zoo(settings.replace(tiny=True, isolation="inline"), registry=registry).run("toy-detection",
                                                                                            **values)
        worker_zoo = Zoo(settings.replace(tiny=True, isolation="process"), registry=registry)
        try:
            isolated = worker_zoo.run("toy-detection", **values)
            assert [h.kind for h in worker_zoo.models.workers.handles()] == ["toy-detection"]
        finally:
            worker_zoo.models.close()
    finally:
        unregister_kind("toy-detection")
    assert inline["pid"] == os.getpid() and isolated["pid"] != os.getpid()
    detections = inline["detections"]
    assert len(detections) == 5  # one per detection token, threshold 0
    for d in detections:
        assert d["label"] in LABELS and 0.0 <= d["score"] <= 1.0 and len(d["box"]) == 4
    assert isolated["detections"] == detections  # seeded weights: the same answer in either process


def test_unknown_kind_names_the_registered_ones_and_the_fix(settings: Settings) -> None:
    with pytest.raises(UnknownKind) as info:
        get_kind("toy-detection")
    message = str(info.value)
    assert "toy-detection" in message and "register_kind" in message
    for name in ("causal-lm", "automatic-speech-recognition", "text-to-image"):
        assert name in message
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownKind, match="causal-lm"):
        ModelManager(settings).load("tiny:causal-lm", "toy-detection")
    with pytest.raises(ModelNotFound, match="tiny:causal-lm") as tiny_info:
        ModelManager(settings).resolve("tiny:toy-detection")
    assert "Unknown tiny model kind `toy-detection`" in str(tiny_info.value)

    class Orphan(Detector):
        task = "orphan-detection"
        model_kind = "toy-detection"  # a name, but nothing registered it

    with pytest.raises(UnknownKind, match="toy-detection"):
        Registry().register(Orphan, "tests.test_kinds")
    registry = Registry()
    with pytest.raises(PluginLoadError, match="model_kind"):
        registry.register(type("NoKind", (Detector,), {"task": "no-kind", "model_kind": 7}))


def test_a_clash_needs_replace(detection: ModelKind) -> None:
    register_kind(detection)  # the same kind again: nothing to decide
    other = ModelKind("toy-detection", auto_class="AutoModelForZeroShotObjectDetection", processor="processor")
    with pytest.raises(KindClash) as info:
        register_kind(other)
    assert "toy-detection" in str(info.value) and "replace=True" in str(info.value)
    assert get_kind("toy-detection") is detection
    assert register_kind(other, replace=True) is other and get_kind("toy-detection") is other
    with pytest.raises(KindClash, match="causal-lm"):
        register_kind(ModelKind("causal-lm", auto_class="AutoModel"))
    assert get_kind("causal-lm").language_model


def test_bad_declarations_say_what_to_write() -> None:
    with pytest.raises(InvalidInput, match="processor"):
        ModelKind("x", processor="feature-extractor")
    with pytest.raises(InvalidInput, match="families"):
        ModelKind("x", families=())
    assert ModelKind("x", families="piper").families == ("piper",)
    with pytest.raises(InvalidInput, match="kind name"):
        ModelKind("")


def test_kind_mismatch_reads_the_registered_auto_classes(settings: Settings, detection: ModelKind) -> None:
    manager = ModelManager(settings)
    assert manager.kind_mismatch("tiny:toy-detection", detection) is None
    assert manager.kind_mismatch("tiny:toy-detection", "text-classification") == \
        "a yolos model (YolosForObjectDetection)"
    assert manager.kind_mismatch("tiny:causal-lm", detection) == "a llama model (LlamaForCausalLM)"
    # A family the kind does not name is refused before anything loads, saying what the files are.
    pictures = ModelKind("pictures-only", processor="none", families=("diffusers",))
    assert manager.kind_mismatch("tiny:causal-lm", pictures) == "a llama model (LlamaForCausalLM)"
    with pytest.raises(ModelLoadError, match="cannot serve kind `pictures-only`") as info:
        manager.load("tiny:causal-lm", pictures)
    assert "loads from: diffusers" in str(info.value)


def test_packaged_models_register_and_stand_in_for_their_hub_ids(tmp_path: Path) -> None:
    from zoo.models.refs import parse_ref
    from zoo.models.sources import PACKAGED, Packaged, Resolver, register_packaged, unregister_packaged

    assert {"smollm2-135m-instruct", "whisper-tiny.en", "all-minilm-l6-v2", "piper-joe-us"} <= set(PACKAGED)
    # A pip package's files (here a file of the plugins package itself, found without importing it).
    entry = Packaged("plugins", "kinds.py", "zoo-test-copy==1.0", ("someone/mirrored-model",), "MIT", "a test copy")
    resolver = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path / "tiny")
    register_packaged("test-copy", entry)
    try:
        assert PACKAGED["test-copy"] is entry
        found = resolver.resolve(parse_ref("packaged:test-copy"))
        assert found.source == "packaged" and found.path == ROOT / "plugins" / "kinds.py"
        mirrored = resolver.resolve(parse_ref("someone/mirrored-model"))  # offline: the packaged copy
        assert mirrored.source == "packaged" and mirrored.path == found.path
        register_packaged("test-copy", entry)  # the same entry again: nothing to decide
        with pytest.raises(KindClash, match="replace=True"):
            register_packaged("test-copy", Packaged("other", "x", "other==1", (), "MIT", "another"))
    finally:
        unregister_packaged("test-copy")
    with pytest.raises(ModelNotFound, match="packaged:smollm2-135m-instruct") as info:
        resolver.resolve(parse_ref("packaged:test-copy"))
    assert "Unknown packaged model `test-copy`" in str(info.value)


def _string_constants(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal in a module that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_per_task_table_remains_in_zoo() -> None:
    """No string literal in zoo/ is a built-in kind's or task's name: no table keyed by them, no `kind == "..."`.

    Exact literals, not substrings: prose in messages ("a Piper text-to-speech voice") may name a task;
    what a third party would have to edit is a key or a comparison, and those are whole literals.
    Hyphenated names only: `"text_generation"` in zoo/models/remote.py is InferenceClient's method name.
    """
    builtin = Registry.discover(entry_points=False)
    assert builtin.quarantined == []  # plugins/kinds.py and plugins/_tiny_builders.py are not taken for plugins
    names = {k.name for k in registered_kinds()} | set(builtin.tasks())
    # The Models tab's task is the zoo's plain word for its models too (`zoo models`, the Space's `models:` list).
    names.discard("models")
    assert {"causal-lm", "automatic-speech-recognition", "image-classification", "text-to-image",
            "conversational", "text-generation"} <= names
    found = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
             for path in sorted((ROOT / "zoo").rglob("*.py")) for line, text in _string_constants(path)
             if text in names]
    assert found == []

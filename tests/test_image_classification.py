"""Image classification (plugins/image_classification.py) on its tiny random-weight model: top-k probabilities,
files and non-images, and huge images refused from their header (or downscaled when the operator says so).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from samples import _image, huge_png
from zoo.errors import InvalidInput
from zoo.runner import Zoo
from zoo.settings import Settings


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

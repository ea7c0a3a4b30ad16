"""The yolos-detection plugin and its model kind: zoo.testing's check, then the boxes."""

from zoo.kinds import get_kind
from zoo.testing import check_plugin, zoo_for
from zoo.ui import sample_image

from zoo_detect import OBJECT_DETECTION, TINY_LABELS, ObjectDetection


def test_declaration_and_examples() -> None:
    check_plugin(ObjectDetection)


def test_the_kind_registers_with_the_plugin() -> None:
    zoo = zoo_for(ObjectDetection)
    assert get_kind("yolos-detection") == OBJECT_DETECTION
    out = zoo.run("yolos-detection", image=sample_image(), threshold=0.0)
    assert len(out["objects"]) == 5  # the tiny YOLOS has 5 detection tokens; threshold 0 keeps all
    for label, score, xmin, ymin, xmax, ymax in out["objects"]:
        assert label in TINY_LABELS and 0 <= score <= 1
        assert 0 <= xmin <= xmax <= 320 and 0 <= ymin <= ymax <= 240  # the sample picture is 320x240
    assert out["annotated"].size == (320, 240)

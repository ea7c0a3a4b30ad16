"""The text-statistics plugin: zoo.testing's check, then what it computes."""

from zoo.testing import check_plugin, zoo_for

from zoo_text_stats import TextStatistics


def test_declaration_and_examples() -> None:
    check_plugin(TextStatistics)


def test_counts() -> None:
    out = zoo_for(TextStatistics).run("text-statistics", text="b a b c b a", top=2)
    assert out["words"] == [["b", 3], ["a", 2]]
    assert out["frequent"] == {"b": 0.5, "a": 2 / 6}
    assert out["reading_minutes"] == 0.03

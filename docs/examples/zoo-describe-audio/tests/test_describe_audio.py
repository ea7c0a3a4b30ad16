"""The describe-audio composite: zoo.testing's check, and that it really chains its two parts."""

from zoo.testing import check_plugin, zoo_for
from zoo.ui import sample_speech

from zoo_describe_audio import DescribeAudio


def test_declaration_and_examples() -> None:
    check_plugin(DescribeAudio)  # the speech recognition and summarization plugins come from the zoo


def test_it_summarizes_the_transcript() -> None:
    zoo = zoo_for(DescribeAudio)
    speech = sample_speech()
    out = zoo.run("describe-audio", audio=speech, max_length=24)
    heard = zoo.run("automatic-speech-recognition", audio=speech)["text"].strip()
    assert heard  # the tiny model's words are noise, but there are some
    assert out["transcript"] == heard
    assert out["summary"] == zoo.run("summarization", text=heard, max_length=24)["summary"]

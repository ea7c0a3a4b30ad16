"""Cold start: what app.py does to come up fast (zoo/coldstart.py, zoo.ui's probes_ahead and set_queue, the share
button made without a subclass), each checked for what it must keep doing. The ratio itself is measured by
`python -m bench --only coldstart_tabs` (BENCHMARKS.md)."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any

import pytest

from zoo.coldstart import collector_paused
from zoo.i18n import english
from zoo.runner import Zoo
from zoo.settings import Settings


def test_the_collector_is_paused_inside_then_what_was_made_is_frozen_and_it_resumes() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with collector_paused():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]  # long-lived objects, as imports and tabs are
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(made)
    finally:
        gc.unfreeze()


def test_the_collector_resumes_after_an_error_and_stays_off_if_it_was_off() -> None:
    try:
        with pytest.raises(RuntimeError), collector_paused():
            raise RuntimeError("a plugin failed to import")
        assert gc.isenabled()
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe (apt-get install ffmpeg); CI has it")
def test_probes_ahead_give_gradios_answers_once_per_file_and_put_gradios_checks_back(tmp_path: Path,
                                                                                     monkeypatch: Any) -> None:
    import gradio.processing_utils as pu

    from zoo.ui import probes_ahead, sample_video

    clip = sample_video(tmp_path)
    assert clip is not None
    wav = tmp_path / "tone.wav"
    from speech import write_wav

    write_wav(wav)
    aiff = tmp_path / "tone.aiff"  # a container no browser plays: gradio's check says False
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(aiff)], check=True)
    expected = {clip: pu.video_is_playable(clip), str(wav): pu.audio_is_playable(str(wav)),
                str(aiff): pu.audio_is_playable(str(aiff))}
    assert expected == {clip: True, str(wav): True, str(aiff): False}

    calls: list[str] = []
    real_audio, real_video = pu.audio_is_playable, pu.video_is_playable
    monkeypatch.setattr(pu, "audio_is_playable", lambda p: calls.append(p) or real_audio(p))
    monkeypatch.setattr(pu, "video_is_playable", lambda p: calls.append(p) or real_video(p))
    counting_audio, counting_video = pu.audio_is_playable, pu.video_is_playable
    with probes_ahead([clip, str(wav)]):
        assert pu.audio_is_playable is not counting_audio
        for _ in range(3):  # gradio asks twice per example (the examples and their table): one probe each
            assert pu.video_is_playable(clip) is True
            assert pu.audio_is_playable(str(wav)) is True
            assert pu.audio_is_playable(str(aiff)) is False  # not probed ahead: probed when asked, once
    assert sorted(calls) == sorted([clip, str(wav), str(aiff)])
    assert (pu.audio_is_playable, pu.video_is_playable) == (counting_audio, counting_video)

    calls.clear()
    wav.write_bytes(aiff.read_bytes())  # a file changed since its probe is probed again
    with probes_ahead([str(wav)]):
        assert pu.audio_is_playable(str(wav)) is False
    assert calls == [str(wav)]


def test_example_media_are_the_declared_and_generated_audio_and_video(tmp_path: Path, monkeypatch: Any) -> None:
    import zoo.ui as ui
    from zoo.plugin import Audio, Plugin, Text

    monkeypatch.setattr(ui, "sample_dir", lambda: tmp_path)
    (tmp_path / "speech.wav").write_bytes(b"RIFF")
    (tmp_path / "picture.png").write_bytes(b"PNG")

    class Listener(Plugin):
        task = "listener-probe"
        inputs = (Audio("audio"), Text("text", required=False))
        outputs = (Text("out"),)
        examples = ({"audio": "/data/question.mp3", "text": "hi.wav"}, {"audio": None})

        def run(self, model: Any, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
            return {"out": ""}

    assert ui.example_media([Listener()]) == ["/data/question.mp3", str(tmp_path / "speech.wav")]


def test_the_zoo_sets_the_queue_gradio_made_without_rebuilding_the_server_app(tmp_path: Path) -> None:
    import gradio as gr

    from zoo.ui import set_queue

    zoo = Zoo(Settings(offline=True, cache_dir=tmp_path, plugin_sources="builtin", max_queue=7,
                       max_concurrency_per_model=3))
    with gr.Blocks() as demo:
        queue, app = demo._queue, demo.app
        set_queue(demo, zoo)
        assert demo._queue is queue and demo.app is app  # demo.queue(...) would have made both anew
    assert (queue.max_size, queue.default_concurrency_limit) == (7, 3)
    with gr.Blocks() as reference:  # what gradio's own queue() sets, for comparison
        reference.queue(max_size=7, default_concurrency_limit=3)
        assert reference.app is not app
    assert (reference._queue.max_size, reference._queue.default_concurrency_limit) == (7, 3)


def test_the_share_button_is_a_deep_link_button_without_gradios_own_click_and_writes_no_stub(tmp_path: Path) -> None:
    import gradio as gr

    import zoo.ui as ui

    stub = Path(ui.__file__).with_suffix(".pyi")
    stub.unlink(missing_ok=True)
    demo = ui.build_demo(Zoo(Settings(offline=True, tiny=True, cache_dir=tmp_path, plugin_sources="builtin")))
    buttons = [b for b in demo.blocks.values() if isinstance(b, gr.DeepLinkButton)]
    assert len(buttons) == len(demo.zoo.registry) and all(english(b.copied_value) == ui.SHARE_COPIED for b in buttons)
    # gr.DeepLinkButton's own click copies a link without `?tab=` and sleeps a second on the server; none is here.
    own = [fn for fn in demo.fns.values() if fn.js and "currentUrl.toString()" in fn.js]
    assert own == []
    # No icon file: gradio adds each button's icon to the static paths every served file is checked against.
    assert all(b.icon is None for b in buttons)
    assert not stub.exists(), "gradio wrote a .pyi beside zoo/ui.py: a component subclass is back"

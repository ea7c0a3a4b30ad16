"""The Models tab: models loaded now (manager.loaded / unload), files on disk (sizes, Delete), Hub downloads,
and who may do it (ZOO_ALLOW_MODEL_ADMIN, ZOO_OPERATORS with Spaces OAuth, zoo/operators.py)."""

from __future__ import annotations

import gc
import os
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from zoo.errors import InvalidInput, ModelInUse, ModelNotAllowed, ModelNotFound
from zoo.models.cache import ModelCache
from zoo.models.disk import delete, disk_models, download, folder_size, hub_cache_models, zoo_cache_models
from zoo.operators import operator_refusal, with_profile
from zoo.runner import Zoo
from zoo.settings import Settings
import plugins.models_tab as tab

TC = "text-classification"
TC_TINY = "tiny:text-classification"
SPACE = {"SPACE_ID": "owner/zoo", "SYSTEM": "spaces"}  # what a Space sets


def gone(pid: int, within: float = 10.0) -> bool:
    """True once process `pid` has exited (no /proc entry, or a zombie waiting to be reaped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------- the cache and the manager


def test_cache_unload_drops_an_idle_model_refuses_a_pinned_one_and_ignores_an_unknown_one() -> None:
    cache = ModelCache(budget=10**9)
    idle, busy = Closable(), Closable()
    cache.release_entry(cache.acquire("idle", lambda: (idle, 100)))
    pinned = cache.acquire("busy", lambda: (busy, 200))
    assert cache.unload("idle") is True and idle.closed and cache.keys() == ["busy"]
    assert cache.used_bytes == 200
    with pytest.raises(ModelInUse, match=r"serving 1 request\(s\)") as err:
        cache.unload("busy")
    assert "press Unload again when it is idle" in err.value.fix and not busy.closed
    assert cache.unload("nothing") is False
    cache.release_entry(pinned)
    assert cache.unload("busy") is True and busy.closed and cache.keys() == [] and cache.used_bytes == 0


def test_an_in_process_model_is_listed_with_its_tab_memory_and_idle_time_and_unload_releases_it(
        tiny_inline_zoo: Zoo) -> None:
    zoo = tiny_inline_zoo
    assert zoo.models.loaded() == []
    zoo.run(TC, text="What a lovely day.")
    [info] = zoo.models.loaded()
    entry = zoo.models.cache.loaded_entries()[0]
    assert (info.ref, info.tasks, info.kind, info.where, info.pid) == (TC_TINY, (TC,), "text-classification",
                                                                      "this process", None)
    assert info.family == "transformers" and info.device == "cpu" and info.is_tiny and info.in_use == 0
    assert info.memory == entry.nbytes > 0 and info.memory_source == "loader's count"
    time.sleep(0.3)
    assert zoo.models.loaded()[0].idle_seconds >= 0.3
    model = weakref.ref(entry.value.model)
    del entry
    assert zoo.models.unload(info.id) is True
    gc.collect()
    assert model() is None  # nothing keeps the weights alive
    assert zoo.models.loaded() == [] and zoo.models.unload(info.id) is False


def test_a_model_in_use_is_refused_by_name_and_unloads_once_idle(tiny_inline_zoo: Zoo) -> None:
    zoo = tiny_inline_zoo
    with zoo.models.use(TC_TINY, TC, task=TC):
        [info] = zoo.models.loaded()
        assert info.in_use == 1 and tab._idle(info.idle_seconds, info.in_use) == "in use"
        with pytest.raises(ModelInUse) as err:
            zoo.models.unload(TC_TINY)  # by its name works as well as by id
        assert f"`{TC_TINY}` is in use" in err.value.message
    assert zoo.models.unload(TC_TINY) is True and zoo.models.loaded() == []


def test_a_worker_model_shows_its_process_rss_and_unload_ends_the_process(settings: Settings) -> None:
    zoo = Zoo(settings.replace(tiny=True, isolation="process"))
    zoo.run(TC, text="What a lovely day.")
    [info] = zoo.models.loaded()
    assert info.pid is not None and info.pid != os.getpid() and info.where == f"worker process {info.pid}"
    assert info.memory_source == "worker RSS"
    rss = vm_rss(info.pid)
    assert 50 * 2**20 < info.memory and abs(info.memory - rss) < 0.2 * rss  # torch alone is more than 50 MB
    message = tab.unload(zoo, info.id)
    assert message.startswith(f"Unloaded `{TC_TINY}`") and f"worker process {info.pid} ended" in message
    assert gone(info.pid)  # its memory went back to the OS with it
    assert zoo.models.loaded() == []


def test_tabs_sharing_a_model_are_all_listed(tiny_inline_zoo: Zoo) -> None:
    zoo = tiny_inline_zoo
    zoo.run("text-generation", prompt="Hi", max_new_tokens=2)
    zoo.run("conversational", message="Hi", max_new_tokens=2)
    [info] = zoo.models.loaded()
    assert info.ref == "tiny:causal-lm" and info.tasks == ("conversational", "text-generation")
    rows = tab.loaded_rows(zoo)
    assert rows[0][:2] == ["tiny:causal-lm (tiny)", "conversational, text-generation"]
    assert rows[0][6].endswith(" weights") and rows[0][8] == "idle"


# --------------------------------------------------------------------------- on disk


def fake_hub_repo(hub: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """A Hugging Face cache entry as huggingface_hub writes it: blobs, a snapshot of symlinks, refs/main."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for i, (name, data) in enumerate(files.items()):
        blob = repo / "blobs" / f"{i:040x}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return repo


@pytest.fixture
def disk(tmp_path: Path) -> tuple[Path, Path]:
    """A zoo cache and a Hugging Face cache with models of known sizes."""
    cache, hub = tmp_path / "zoo", tmp_path / "hub"
    (cache / "tiny" / "causal-lm").mkdir(parents=True)
    (cache / "tiny" / "causal-lm" / "model.safetensors").write_bytes(b"x" * 1000)
    (cache / "tiny" / "causal-lm" / "config.json").write_bytes(b"{}" + b" " * 232)
    (cache / "whisper").mkdir()
    (cache / "whisper" / "tiny.en.pt").write_bytes(b"w" * 500)
    (cache / "gguf").mkdir()
    (cache / "gguf" / "m.f16-0123.gguf").write_bytes(b"g" * 300)
    (cache / "gguf" / "m.f16-0123.gguf.json").write_bytes(b"j" * 20)
    (cache / "llama-cpu").mkdir()  # not a model: not listed
    (cache / "llama-cpu" / "verdicts.json").write_text("{}")
    store = cache / "trained" / "my-sentiment"
    store.mkdir(parents=True)
    (store / "card.json").write_text('{"task": "text-classification", "kind": "text-classification"}')
    (store / "model.safetensors").write_bytes(b"t" * 4000)
    fake_hub_repo(hub, "owner/model", {"config.json": b"{}" * 50, "model.safetensors": b"s" * 2500})
    return cache, hub


def test_the_disk_listing_gives_each_model_its_reference_and_size(disk: tuple[Path, Path]) -> None:
    cache, hub = disk
    listed = {m.id: m for m in zoo_cache_models(cache)}
    assert set(listed) == {"zoo:tiny/causal-lm", "zoo:whisper/tiny.en.pt", "zoo:gguf/m.f16-0123.gguf",
                           "zoo:trained/my-sentiment"}
    tiny = listed["zoo:tiny/causal-lm"]
    assert (tiny.ref, tiny.size, tiny.files, tiny.deletable) == ("tiny:causal-lm", 1234, 2, True)
    assert listed["zoo:whisper/tiny.en.pt"].ref == "openai-whisper:tiny.en" and listed["zoo:whisper/tiny.en.pt"].size == 500
    assert listed["zoo:gguf/m.f16-0123.gguf"].size == 320  # the converted file and its sidecar
    assert listed["zoo:trained/my-sentiment"].ref == "trained:my-sentiment"
    assert listed["zoo:trained/my-sentiment"].size == 4000 + len('{"task": "text-classification", "kind": "text-classification"}')
    [repo] = hub_cache_models(hub)
    # Snapshot symlinks point at the blobs: each byte counts once.
    assert (repo.ref, repo.where, repo.size, repo.files, repo.id) == ("owner/model", "Hugging Face cache", 2600, 2,
                                                                      "hub:model/owner/model")
    assert folder_size(repo.path / "snapshots" / ("a" * 40)) == (0, 2)  # symlinks: counted as files, not bytes


def test_packaged_models_are_listed_and_never_deleted_here(disk: tuple[Path, Path]) -> None:
    from zoo.models.disk import packaged_models

    cache, hub = disk
    packaged = packaged_models()
    assert packaged, "the packaged offline models are installed in the dev venv"
    first = packaged[0]
    assert first.where == "packaged (pip)" and not first.deletable and first.size > 0
    assert "pip uninstall " in first.note
    with pytest.raises(ModelNotAllowed) as err:
        delete(first.id, cache, hub_cache=hub)
    assert "not deleted from the app" in err.value.message and "pip uninstall" in err.value.fix


def test_delete_removes_the_files_and_refuses_a_loaded_model_or_an_unknown_id(disk: tuple[Path, Path]) -> None:
    from zoo.models.manager import LoadedInfo

    cache, hub = disk
    loaded = LoadedInfo("abc", "owner/model", ("owner/model",), ("text-classification",), "text-classification",
                        "transformers", "cpu", "worker process 4242", 4242, 10, "worker RSS", 1.0, 0, 0.1, False,
                        str(hub / "models--owner--model" / "snapshots" / ("a" * 40)))
    with pytest.raises(ModelInUse) as err:
        delete("hub:model/owner/model", cache, [loaded], hub_cache=hub)
    assert "`owner/model` is loaded now: `owner/model` (worker process 4242)" in err.value.message
    assert "unload it first" in err.value.fix and (hub / "models--owner--model").is_dir()

    gone_model = delete("hub:model/owner/model", cache, [], hub_cache=hub)
    assert gone_model.size == 2600 and not (hub / "models--owner--model").exists()
    assert hub_cache_models(hub) == []
    delete("zoo:tiny/causal-lm", cache, hub_cache=hub)
    delete("zoo:gguf/m.f16-0123.gguf", cache, hub_cache=hub)
    delete("zoo:trained/my-sentiment", cache, hub_cache=hub)
    assert not (cache / "tiny" / "causal-lm").exists() and not list((cache / "gguf").iterdir())
    assert not (cache / "trained" / "my-sentiment").exists()
    assert [m.id for m in zoo_cache_models(cache)] == ["zoo:whisper/tiny.en.pt"]
    with pytest.raises(ModelNotFound) as err:
        delete("zoo:tiny/causal-lm", cache, hub_cache=hub)
    assert "No model `zoo:tiny/causal-lm` on disk" in err.value.message and "zoo:whisper/tiny.en.pt" in err.value.fix


def test_the_tab_refuses_to_delete_a_model_its_zoo_has_loaded(tiny_inline_zoo: Zoo) -> None:
    zoo = tiny_inline_zoo
    zoo.run(TC, text="Fine.")
    with pytest.raises(ModelInUse) as err:
        tab.delete(zoo, "zoo:tiny/text-classification")
    assert f"`{TC_TINY}` (this process)" in err.value.message
    assert tab.unload(zoo, TC_TINY).startswith(f"Unloaded `{TC_TINY}`")
    ids = [m.id for m in disk_models(zoo.settings.cache_dir)]
    assert "zoo:tiny/text-classification" in ids  # refused: still there (the shared session cache keeps it)


# --------------------------------------------------------------------------- download


def test_download_is_refused_offline_naming_the_setting(settings: Settings) -> None:
    from zoo.models.disk import download_off_reason

    assert "HF_HUB_OFFLINE=1" in download_off_reason(settings)
    with pytest.raises(ModelNotAllowed) as err:
        download("HuggingFaceTB/SmolLM2-135M-Instruct", settings)
    assert "the zoo is offline" in err.value.message and "unset HF_HUB_OFFLINE" in err.value.fix
    assert download_off_reason(settings.replace(offline=False)) is None
    for bad in ("", "no-owner", "owner/name/extra", "tiny:causal-lm", "../etc"):
        with pytest.raises(InvalidInput, match="`repo_id` must be a Hugging Face model id"):
            download(bad, settings.replace(offline=False))


def test_download_reports_progress_and_skips_pickles_unless_allowed(settings: Settings, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: list[dict[str, Any]] = []

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        bar = kwargs["tqdm_class"]
        if bar is not None:  # huggingface_hub's own bars when None
            files = bar(total=2, desc="Fetching 2 files")
            data = bar(total=3000, unit="B", name="huggingface_hub.snapshot_download")
            for _ in range(3):
                data.update(1000)
            files.update(2)
        folder = tmp_path / "snap"
        folder.mkdir(exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"s" * 3000)
        (folder / "config.json").write_text("{}")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    reports: list[tuple[float | None, str]] = []
    online = settings.replace(offline=False, allow_model_admin=True)
    zoo = Zoo(online)
    message = tab.download(zoo, " owner/model ", report=lambda f, d: reports.append((f, d)))
    assert message == ("Downloaded `owner/model` into the Hugging Face cache: 2 files (model.safetensors).")
    assert reports == [(pytest.approx(1 / 3), "Downloading owner/model: 1.0 KB of 3.0 KB"),
                       (pytest.approx(2 / 3), "Downloading owner/model: 2.0 KB of 3.0 KB"),
                       (1.0, "Downloading owner/model: 3.0 KB of 3.0 KB"),
                       (1.0, "Downloading owner/model: Fetching 2 files 2/2")]
    assert calls[0]["repo_id"] == "owner/model" and "*.safetensors" in calls[0]["allow_patterns"]
    assert "*.bin" not in calls[0]["allow_patterns"] and "*.pt" not in calls[0]["allow_patterns"]
    download("owner/model", online.replace(allow_pickle=True))
    assert "*.bin" in calls[1]["allow_patterns"] and calls[1]["tqdm_class"] is None


def test_the_tab_relays_download_progress_reported_from_other_threads(settings: Settings, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub updates its bars in download threads; gr.Progress only works in the request's thread."""
    import threading

    import huggingface_hub

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        bar = kwargs["tqdm_class"](total=2000, unit="B")

        def fetch() -> None:
            for _ in range(2):
                time.sleep(0.15)
                bar.update(1000)

        worker = threading.Thread(target=fetch)
        worker.start()
        worker.join()
        (tmp_path / "model.safetensors").write_bytes(b"s")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    shown: list[tuple[float, str, bool]] = []
    me = threading.current_thread()

    def progress(fraction: float, desc: str = "") -> None:
        shown.append((fraction, desc, threading.current_thread() is me))

    message = tab.download_relaying_progress(Zoo(settings.replace(offline=False)), "owner/model", None, progress,
                                             every=0.05)
    assert message.startswith("Downloaded `owner/model`")
    assert shown and all(here for _, _, here in shown)  # every update from the request's own thread
    assert shown[-1][:2] == (1.0, "Downloading owner/model: 2.0 KB of 2.0 KB")
    with pytest.raises(ModelNotAllowed, match="the zoo is offline"):  # errors come back to the request
        tab.download_relaying_progress(Zoo(settings), "owner/model", None, progress)


# --------------------------------------------------------------------------- who may


def profile(name: str) -> Any:
    import gradio as gr

    return gr.OAuthProfile({"preferred_username": name, "name": name.title(), "sub": "1",
                            "profile": f"https://huggingface.co/{name}", "picture": ""})


def test_operator_checks_with_signed_in_profiles() -> None:
    open_ = Settings(operators=())
    assert operator_refusal(open_, None, env=SPACE) is None  # no allow-list: the tab's own switch decides
    ops = Settings(operators=("Alice", "bob"))
    anonymous = operator_refusal(ops, None, "unload models", env=SPACE)
    assert "Only this Space's operators (Alice, bob) may unload models" in anonymous
    assert "Sign in with Hugging Face" in anonymous
    stranger = operator_refusal(ops, profile("mallory"), "unload models", env=SPACE)
    assert "`mallory` is not an operator here: only Alice, bob may unload models" in stranger
    assert "ZOO_OPERATORS" in stranger
    assert operator_refusal(ops, profile("alice"), env=SPACE) is None  # user names ignore case
    assert operator_refusal(ops, profile("bob"), env=SPACE) is None
    assert operator_refusal(ops, {"preferred_username": "bob"}, env=SPACE) is None  # the claims as a dict
    elsewhere = operator_refusal(ops, None, "train models", env={})
    assert "works on a Space only" in elsewhere and "unset ZOO_OPERATORS" in elsewhere


def test_model_admin_is_off_on_a_space_unless_enabled_or_operators_are_named() -> None:
    assert Settings.from_env({}).allow_model_admin
    assert not Settings.from_env(SPACE).allow_model_admin and not Settings.from_env(SPACE).allow_training
    assert Settings.from_env({**SPACE, "ZOO_ALLOW_MODEL_ADMIN": "1"}).allow_model_admin
    assert not Settings.from_env({"ZOO_ALLOW_MODEL_ADMIN": "0"}).allow_model_admin
    named = Settings.from_env({**SPACE, "ZOO_OPERATORS": "alice, bob"})
    assert named.operators == ("alice", "bob") and named.allow_model_admin and named.allow_training
    assert not Settings.from_env({**SPACE, "ZOO_OPERATORS": "alice", "ZOO_ALLOW_TRAINING": "0"}).allow_training
    with pytest.raises(InvalidInput) as err:
        Settings.from_env({"ZOO_OPERATORS": "alice,../bob"})
    assert "`ZOO_OPERATORS`" in str(err.value) and "../bob" in str(err.value) and "alice,bob" in err.value.fix


def test_the_tab_refuses_every_action_when_admin_is_off_or_the_user_is_not_an_operator(settings: Settings) -> None:
    off = Zoo(settings.replace(tiny=True, allow_model_admin=False))
    for action, value in ((tab.unload, TC_TINY), (tab.delete, "zoo:tiny/causal-lm"), (tab.download, "a/b")):
        with pytest.raises(ModelNotAllowed) as err:
            action(off, value)
        assert "Model management is off on this server" in err.value.message
        assert "ZOO_ALLOW_MODEL_ADMIN=1" in err.value.fix and "ZOO_OPERATORS" in err.value.fix
    guarded = Zoo(settings.replace(tiny=True, operators=("alice",)))
    with pytest.raises(ModelNotAllowed) as err:
        tab.unload(guarded, TC_TINY, profile("mallory"))
    assert "`mallory` is not an operator here: only alice may unload models" in err.value.message
    assert tab.unload(guarded, TC_TINY, profile("alice")) == f"`{TC_TINY}` is not loaded any more " \
                                                               "(unloaded, or evicted while idle)."


def test_gradio_hands_the_signed_in_profile_to_wrapped_handlers() -> None:
    import gradio as gr
    from gradio.helpers import special_args

    seen: list[Any] = []

    def act(value: str, progress: Any = gr.Progress(), oauth_profile: Any = None) -> str:
        seen.append((value, oauth_profile))
        return value

    wrapped = with_profile(act, 1)
    inputs, progress_index, _, _ = special_args(wrapped, ["x"], request=None)
    assert inputs[0] == "x" and inputs[1] is None and isinstance(inputs[2], gr.Progress) and progress_index == 2
    assert wrapped(*inputs) == "x" and seen == [("x", None)]
    wrapped("y", profile("alice"), gr.Progress())
    assert seen[-1][0] == "y" and seen[-1][1].username == "alice"
    # Not an API parameter: gradio leaves it out of the endpoint's parameters.
    from gradio.utils import get_function_params

    assert [p[0] for p in get_function_params(wrapped)] == ["value", "progress"]  # progress: gradio's own


def test_fine_tune_and_models_tabs_are_operator_only_with_a_sign_in_button_on_a_space(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    from zoo.ui import build_demo

    import gradio.oauth

    from zoo import operators

    # A Space (SYSTEM=spaces itself would make gradio wrap every function for ZeroGPU's `spaces` package).
    monkeypatch.setattr(operators, "on_space", lambda env=None: True)
    monkeypatch.setattr(gradio.oauth, "get_space", lambda: "owner/zoo")
    # What a Space with `hf_oauth: true` provides (gradio reads them at import); no request reaches the Hub here.
    for name, value in (("OAUTH_CLIENT_ID", "client"), ("OAUTH_CLIENT_SECRET", "secret"),
                        ("OAUTH_SCOPES", "openid profile"), ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(gradio.oauth, name, value)
    zoo = Zoo(settings.replace(tiny=True, operators=("alice",), plugins=("fine-tune", "models")))
    demo = build_demo(zoo)
    buttons = [b for b in demo.blocks.values() if isinstance(b, gr.LoginButton)]
    assert len(buttons) == 2 and demo.expects_oauth  # one in each operator tab
    fns = {getattr(f.fn, "__name__", ""): f.fn for f in demo.fns.values()}
    with pytest.raises(gr.Error) as err:
        list(fns["fine_tune"]("text-classification", None, "my-x", *[None] * 11, None))
    assert "Only this Space's operators (alice) may train models" in err.value.message
    with pytest.raises(gr.Error) as err:
        fns["do_unload"](TC_TINY, profile("mallory"))
    assert "`mallory` is not an operator here" in err.value.message
    message, *_ = fns["do_unload"](TC_TINY, profile("alice"))
    assert "is not loaded any more" in message
    config = demo.get_config_file()
    public = {d["api_name"] for d in config["dependencies"] if d.get("api_visibility") == "public"}
    # Unload, Delete, Download and Refresh are no endpoints (the LoginButton's status check is gradio's own).
    assert {name for name in public if not name.startswith("_check_login_status")} == {"fine_tune", "models"}
    monkeypatch.undo()
    assert not [b for b in build_demo(Zoo(settings.replace(tiny=True, plugins=("models",)))).blocks.values()
                if isinstance(b, gr.LoginButton)]  # no allow-list: no sign-in


def test_the_space_front_matter_turns_on_oauth_when_operators_are_set() -> None:
    from zoo.registry import Registry
    from zoo.space import front_matter

    plugins = [Registry.builtin().get("models")]
    assert "hf_oauth" not in front_matter(plugins, "cpu-basic", "Zoo")
    assert front_matter(plugins, "cpu-basic", "Zoo", operators=("alice",))["hf_oauth"] is True


def test_a_space_built_with_operators_signs_them_in(tmp_path: Path) -> None:
    from zoo.space import build, read_front_matter

    built = build(tmp_path / "space", ["models", "fine-tune"], operators=("alice", "bob"))
    assert read_front_matter(built.folder)["hf_oauth"] is True
    app = (built.folder / "app.py").read_text()
    assert 'OPERATORS = "alice,bob"' in app and 'os.environ.setdefault("ZOO_OPERATORS", OPERATORS)' in app
    pins = (built.folder / "requirements.txt").read_text().splitlines()
    assert "authlib==1.9.6" in pins and "itsdangerous==2.2.0" in pins  # gradio's OAuth needs them on the Space
    plain = build(tmp_path / "plain", ["models"])
    assert "hf_oauth" not in read_front_matter(plain.folder)
    assert 'OPERATORS = ""' in (plain.folder / "app.py").read_text()


# --------------------------------------------------------------------------- the tab's own functions


def test_the_tab_lists_a_request_then_unload_frees_it(settings: Settings) -> None:
    """The functions behind Refresh and Unload, as the tab wires them, on a zoo with worker processes."""
    from zoo.ui import build_demo

    zoo = Zoo(settings.replace(tiny=True, isolation="process", plugins=(TC, "models")))
    demo = build_demo(zoo)
    fns = {getattr(f.fn, "__name__", ""): f.fn for f in demo.fns.values()}
    loaded, pick, on_disk, _ = fns["refresh"](None)
    assert loaded == [] and pick.constructor_args["choices"] == []
    assert any(row[0] == TC_TINY for row in on_disk)  # built by an earlier test, or now: the session cache
    zoo.run(TC, text="A fine day.")
    loaded, pick, _, _ = fns["refresh"](None)
    [row] = loaded
    assert row[0] == f"{TC_TINY} (tiny)" and row[1] == TC and row[5].startswith("worker process ")
    assert row[6].endswith(" MB RSS") and row[8] == "idle"
    [(label, model_id)] = pick.constructor_args["choices"]
    pid = int(row[5].split()[-1])
    assert label == f"{TC_TINY} · text-classification · worker process {pid}"
    message, loaded, pick, _, _ = fns["do_unload"](model_id, None)
    assert message.startswith(f"Unloaded `{TC_TINY}`, about ") and f"worker process {pid} ended" in message
    assert loaded == [] and gone(pid)
    rows_now, disk_now = fns["models_listing"](None)
    assert rows_now == [] and disk_now


@pytest.mark.app
def test_the_models_endpoint_lists_what_the_server_loaded(app_server: Any) -> None:
    from gradio_client import Client

    client = Client(app_server.url, verbose=False)
    client.predict(text="What a lovely day.", api_name="/text_classification")
    loaded, on_disk = client.predict(api_name="/models")
    rows = [r for r in loaded["data"] if r[0].startswith(TC_TINY)]
    assert rows and rows[0][1] == TC and rows[0][5].startswith("worker process ")
    assert any(r[0] == TC_TINY for r in on_disk["data"])

"""Security defaults: no code the operator did not choose, no files outside the upload cache,
no secrets in logs or answers, no analytics.

Model-loading rules are checked in the core with hostile model folders made at test time
(custom code that would drop a marker file, a pickle that would do the same). The HTTP
rules are checked against `python app.py` in a subprocess started the way an operator would,
with an HF_TOKEN in its environment and custom model ids switched off.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from servers import AppServer, clean_env, free_port, serve_in_process, start_app
from zoo.errors import ModelLoadError, ModelNotAllowed, ZooError
from zoo.i18n import english
from zoo.models.refs import parse_ref
from zoo.models.sources import Resolver
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_ZooTestSecret8c1f3e9a77d24b5e9f0aa1c2"  # fake, and unique enough to grep for
TG, TC = "text-generation", "text-classification"


# --------------------------------------------------------------------------- defaults


def test_safe_defaults() -> None:
    """safetensors only, no remote code; custom ids on locally, off on a Space unless the operator opts in."""
    local = Settings.from_env({})
    assert (local.trust_remote_code, local.allow_pickle, local.allow_custom_models) == (False, False, True)
    assert local.custom_model_allowlist == ()
    space = Settings.from_env({"SPACE_ID": "someone/model-zoo"})
    assert space.allow_custom_models is False
    opted_in = Settings.from_env({"SPACE_ID": "someone/model-zoo", "ZOO_ALLOW_CUSTOM_MODELS": "1",
                                  "ZOO_CUSTOM_MODEL_ALLOWLIST": "HuggingFaceTB/*, Qwen/*",
                                  "ZOO_TRUST_REMOTE_CODE": "0", "ZOO_ALLOW_PICKLE": "no"})
    assert opted_in.allow_custom_models is True
    assert opted_in.custom_model_allowlist == ("HuggingFaceTB/*", "Qwen/*")
    assert (opted_in.trust_remote_code, opted_in.allow_pickle) == (False, False)
    with pytest.raises(ZooError, match="ZOO_TRUST_REMOTE_CODE"):  # a typo is an error, not a silent default
        Settings.from_env({"ZOO_TRUST_REMOTE_CODE": "maybe"})
    context = Zoo(local.replace(offline=True, plugins=(TC,))).models._load_context()
    assert (context.trust_remote_code, context.allow_pickle) == (False, False)


def test_secrets_stay_out_of_settings_repr() -> None:
    """HF_TOKEN is read for remote engines, but printing the settings never shows it."""
    settings = Settings.from_env({"HF_TOKEN": TOKEN})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


# --------------------------------------------------------------------------- hostile model folders


class _DropMarker:
    """Unpickling this creates a file: a stand-in for any code a pickle can run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def tiny_classifier(settings: Settings) -> Path:
    """A good tiny text-classification folder (config, tokenizer, model.safetensors)."""
    return Zoo(settings.replace(tiny=True, plugins=(TC,))).models.resolve("tiny:text-classification").path


def _zoo_for(settings: Settings, folder: Path) -> Zoo:
    """A zoo whose text-classification tab runs the model in `folder` (as ZOO_MODEL_TEXT_CLASSIFICATION)."""
    return Zoo(settings.replace(plugins=(TC,), model_overrides={TC: str(folder)}))


def test_custom_code_in_a_model_folder_is_not_run(settings: Settings, tiny_classifier: Path, tmp_path: Path) -> None:
    """A folder whose config names its own Python classes fails to load, and that code never runs."""
    folder, marker = tmp_path / "custom-code-model", tmp_path / "custom-code-ran"
    shutil.copytree(tiny_classifier, folder)
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "class EvilConfig(BertConfig):\n    model_type = 'zoo-evil'\n"
        "class EvilModel(BertForSequenceClassification):\n    config_class = EvilConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="zoo-evil", auto_map={"AutoConfig": "evil.EvilConfig",
                                                    "AutoModelForSequenceClassification": "evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as err:
        _zoo_for(settings, folder).run(TC, text="hello")
    assert "trust_remote_code" in str(err.value), err.value
    assert not marker.exists(), "the model folder's own Python code ran"


def test_pickle_weights_are_refused(settings: Settings, tiny_classifier: Path, tmp_path: Path) -> None:
    """Pickle-only weights are refused unless ZOO_ALLOW_PICKLE, before the file is ever opened."""
    folder, marker = tmp_path / "pickle-model", tmp_path / "pickle-ran"
    shutil.copytree(tiny_classifier, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _DropMarker(marker)}))
    with pytest.raises(ModelNotAllowed) as err:
        _zoo_for(settings, folder).run(TC, text="hello")
    assert "pickle" in str(err.value) and "ZOO_ALLOW_PICKLE" in str(err.value)
    assert not marker.exists()


def test_safetensors_win_over_a_pickle_beside_them(settings: Settings, tiny_classifier: Path, tmp_path: Path) -> None:
    """With both formats present the safetensors load and the pickle stays unread."""
    folder, marker = tmp_path / "both-model", tmp_path / "pickle-ran"
    shutil.copytree(tiny_classifier, folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _DropMarker(marker)}))
    result = _zoo_for(settings, folder).run(TC, text="hello")
    assert set(result["labels"]) == {"NEGATIVE", "POSITIVE"}
    assert not marker.exists(), "the pickle beside the safetensors was read"


def test_hub_downloads_fetch_safetensors_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A pickle-only repo is refused before any download; otherwise pickles are never fetched."""
    import huggingface_hub

    repos = {"someone/pickle-only": ["config.json", "pytorch_model.bin", "tokenizer.json"],
             "someone/both": ["config.json", "model.safetensors", "pytorch_model.bin", "optimizer.pt", "vocab.txt"]}
    downloads: list[dict[str, Any]] = []

    def snapshot_download(repo_id: str, revision: str | None = None, local_files_only: bool = False,
                          **kwargs: Any) -> str:
        if local_files_only:
            raise FileNotFoundError("not cached")  # nothing is in the HF cache
        downloads.append({"repo": repo_id, **kwargs})
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, revision=None: repos[repo_id])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    resolver = Resolver(offline=lambda: False, allow_pickle=False, tiny_dir=tmp_path / "tiny",
                        hf_cache_dir=tmp_path / "hf")
    with pytest.raises(ModelNotAllowed, match="pickle"):
        resolver.resolve(parse_ref("someone/pickle-only"))
    assert downloads == []
    resolver.resolve(parse_ref("someone/both"))
    patterns = downloads[0]["allow_patterns"]
    fetched = [f for f in repos["someone/both"] if any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert "model.safetensors" in fetched and "pytorch_model.bin" not in fetched and "optimizer.pt" not in fetched


# --------------------------------------------------------------------------- model ids


TRAVERSAL_IDS = ("../../etc", "../../../etc/passwd", "/etc/passwd", "~/.ssh", "./zoo", "zoo", "owner/../../etc",
                 "owner/name/../../../x.gguf", "owner/name@../../etc", "owner//name", "packaged:../../etc",
                 "tiny:../causal-lm", "openai-whisper:../../x", "%2e%2e/%2e%2e/etc", "C:/Windows/System32",
                 "remote:http://169.254.169.254/latest/meta-data")


@pytest.mark.parametrize("ref", TRAVERSAL_IDS)
def test_paths_urls_and_traversal_ids_are_refused(settings: Settings, ref: str) -> None:
    """Even with custom ids allowed, a typed id never reaches the file system or another host."""
    zoo = Zoo(settings.replace(tiny=True, plugins=(TG,), allow_custom_models=True))
    with pytest.raises(ZooError) as err:
        zoo.run(TG, prompt="hi", model=ref)
    assert ref in str(err.value) and err.value.fix, err.value
    assert zoo.models.cache.keys() == [] and zoo.models.cache.stats.loads == 0


def test_custom_ids_only_when_allowed_and_listed(settings: Settings) -> None:
    """ZOO_ALLOW_CUSTOM_MODELS=0 keeps only the listed models; an allow list narrows custom ids."""
    plugin_settings = settings.replace(tiny=True, plugins=(TG,))
    closed = Zoo(plugin_settings.replace(allow_custom_models=False))
    plugin = closed.registry.get(TG)
    with pytest.raises(ModelNotAllowed, match=r"`someone/model` is not allowed on this server.*ZOO_ALLOW_CUSTOM"):
        closed.check_model(plugin, "someone/model")
    for listed in plugin.models.all():  # the known list stays open
        assert closed.check_model(plugin, listed) == listed
    listed_only = Zoo(plugin_settings.replace(custom_model_allowlist=("HuggingFaceTB/*",)))
    bigger = "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert listed_only.check_model(plugin, bigger) == bigger
    with pytest.raises(ModelNotAllowed, match=r"not in the allow list \(HuggingFaceTB/\*\)"):
        listed_only.check_model(plugin, "someone/model")
    assert Zoo(plugin_settings).check_model(plugin, "someone/model") == "someone/model"  # open by default locally


# --------------------------------------------------------------------------- the running app


class Server:
    """`python app.py` in a subprocess (tests/servers.py); its whole output goes to a file, read at the end."""

    def __init__(self, app: AppServer, cache_dir: Path):
        self.app, self.url, self.cache_dir = app, app.url, cache_dir

    def get(self, path: str) -> tuple[int, str]:
        """GET a path sent byte for byte (http.client folds no `..` away, as browsers and httpx do)."""
        parts = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.app.log_text()


@pytest.fixture(scope="module")
def server(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app as an operator starts it on a public machine: custom ids off, a token in the environment."""
    env = clean_env(HF_TOKEN=TOKEN, HF_HUB_OFFLINE="1", ZOO_TINY="1", ZOO_PLUGINS=f"{TG},{TC}",
                    ZOO_ALLOW_CUSTOM_MODELS="0", ZOO_CACHE_DIR=str(model_cache_dir))
    with start_app(base_env=env, log=tmp_path_factory.mktemp("server") / "server.log") as app:
        yield Server(app, model_cache_dir)


OUTSIDE = {  # files a request must not read: path -> words that would prove it was served
    str(ROOT / "README.md"): "make test",
    str(ROOT / "app.py"): "build_demo",
    "/etc/passwd": "root:",
    "/proc/self/environ": TOKEN,
}


def _file_urls() -> list[str]:
    urls = []
    for path in OUTSIDE:
        quoted = urllib.parse.quote(path)
        urls += [f"/gradio_api/file={path}", f"/gradio_api/file={quoted}", f"/file={path}",
                 f"/gradio_api/file{path}", f"/gradio_api/file=//{path.lstrip('/')}"]
    return urls + [
        "/gradio_api/file=README.md", "/gradio_api/file=app.py", "/gradio_api/file=./README.md",
        "/gradio_api/file=../../../../../../etc/passwd", "/gradio_api/file=/tmp/../etc/passwd",
        "/gradio_api/file=/tmp/gradio/../../etc/passwd", "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/README.md",
        "/assets/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd", "/svelte/../../../../../etc/passwd",
        "/favicon.ico/../../README.md", "/gradio_api/file=file:///etc/passwd",
        "/gradio_api/proxy=http://127.0.0.1:1/etc/passwd",
    ]


@pytest.mark.app
def test_file_routes_serve_uploads_and_nothing_else(server: Server) -> None:
    """Every file route refuses the repo, the system and the model cache; an upload is served."""
    import httpx

    # The route works: a file the client uploaded comes back.
    uploaded = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("note.txt", b"uploaded by me\n")},
                          timeout=30).json()[0]
    status, body = server.get(f"/gradio_api/file={uploaded}")
    assert status == 200 and body == "uploaded by me\n"
    refused = []
    model_files = sorted(str(p) for p in server.cache_dir.rglob("config.json"))[:2]  # the zoo's own cache
    assert model_files
    for url in _file_urls() + [f"/gradio_api/file={path}" for path in model_files]:
        status, body = server.get(url)
        leaked = [words for words in OUTSIDE.values() if words in body]
        assert not leaked, f"{url} -> {status} served {leaked}"
        assert status in (400, 403, 404, 405), f"{url} -> {status}: {body[:200]}"
        refused.append(status)
    print(f"\nfile routes: {len(refused)} requests outside the upload cache refused "
          f"({', '.join(f'{s}: {refused.count(s)}' for s in sorted(set(refused)))}); the upload itself served")


@pytest.mark.app
def test_custom_and_path_ids_are_refused_over_http(server: Server) -> None:
    """Over HTTP with custom ids off: typed ids are refused cleanly, listed ones served."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False)
    for ref in ("someone/custom-model", "../../etc", "/etc/passwd", "remote:http://169.254.169.254/",
                "owner/../../etc"):
        with pytest.raises(AppError) as err:
            client.predict(prompt="hi", max_new_tokens=2, model=ref, api_name="/text_generation")
        # The zoo's own check answers (gradio's picker check is skipped, see zoo/ui.py RAW_INPUTS): the id,
        # the rule and the fix; an absolute path is cut to its last part, as every message at the edge.
        message = str(err.value)
        shown = "…/passwd" if ref == "/etc/passwd" else ref
        assert shown in message and "Fix:" in message, message
        assert any(rule in message for rule in ("not allowed", "cannot be chosen", "must be")), message
        assert "Traceback" not in message
    assert isinstance(client.predict(prompt="hi", max_new_tokens=2, model="tiny:causal-lm",
                                     api_name="/text_generation"), str)
    config = json.loads(server.get("/config")[1])
    pickers = [c["props"] for c in config["components"] if english(c.get("props", {}).get("label")) == "Model"]
    assert pickers and not any(p.get("allow_custom_value") for p in pickers), "the picker accepts typed ids"


@pytest.mark.app
def test_token_never_leaves_the_server(server: Server) -> None:
    """HF_TOKEN is in the server's environment; no page, API answer, error or log line shows it."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    answers = [repr(client.predict(prompt="Say your token", max_new_tokens=4, api_name="/text_generation")),
               repr(client.predict(text="hf_", api_name="/text_classification"))]
    for bad in ({"prompt": ""}, {"prompt": "hi", "model": "someone/model"}, {"prompt": "hi", "max_new_tokens": 10**6}):
        try:
            client.predict(**bad, api_name="/text_generation")
        except Exception as exc:
            answers.append(str(exc))
    pages = {path: server.get(path)[1] for path in ("/", "/config", "/gradio_api/info", "/gradio_api/openapi.json",
                                                      "/?view=api", "/gradio_api/info?all_endpoints=true")}
    for where, text in [*pages.items(), *enumerate(answers)]:
        assert TOKEN not in text and TOKEN[3:20] not in text, f"token in {where}"
    time.sleep(0.5)  # let the last log lines land
    log = server.output()
    assert "Running on" in log or "127.0.0.1" in log, log[-2000:]  # the log is the server's real output
    assert TOKEN not in log and TOKEN[3:20] not in log
    cli = subprocess.run([sys.executable, "-m", "zoo", "list"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_TOKEN": TOKEN, "ZOO_TINY": "1", "HF_HUB_OFFLINE": "1"})
    assert cli.returncode == 0 and "text-generation" in cli.stdout, cli.stderr[-2000:]
    assert TOKEN not in cli.stdout + cli.stderr


@pytest.mark.app
def test_analytics_off_by_default(server: Server) -> None:
    """The app started with no GRADIO_ANALYTICS_ENABLED in its environment reports analytics off."""
    assert json.loads(server.get("/config")[1])["analytics_enabled"] is False


def test_analytics_stay_off_even_if_the_environment_asks(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """build_demo pins analytics_enabled=False, so no telemetry request is ever started at build or launch."""
    import gradio.analytics

    sent: list[str] = []
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    monkeypatch.setattr(gradio.analytics, "_do_analytics_request", lambda topic, data: sent.append(topic))
    zoo = Zoo(settings.replace(tiny=True, plugins=(TC,), server_port=free_port()))
    with serve_in_process(zoo) as app:
        assert app.demo.analytics_enabled is False
        urllib.request.urlopen(app.url, timeout=10).read()
    assert sent == [], sent

"""Sign-in (ZOO_AUTH, zoo/auth.py): without credentials the page, the gradio API, MCP and /v1 refuse; with them
(gradio's login form, or HTTP Basic) they work. Passwords are compared in constant time and never logged.

The "with credentials /v1 answers" check lands with the /v1 routes (zoo/openai_api.py): here /v1 is only
shown to be refused before routing, and let through (to whatever answers) with credentials.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest

from mcp_client import call_tool, images, json_texts, list_tools, texts
from servers import AppServer, clean_env
from zoo.auth import AuthMiddleware, basic_credentials, check_password
from zoo.errors import InvalidInput
from zoo.settings import Settings

USERS = (("ann", "correct horse, battery"), ("bob", "p:ss wörd"))  # a comma and a colon, as a file allows


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    return b"authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode())


# ---------------------------------------------------------------------------- settings and checks (no server)


def test_zoo_auth_reads_pairs_and_files_and_never_shows_a_password(tmp_path: Path) -> None:
    assert Settings.from_env({}).auth == ()
    s = Settings.from_env({"ZOO_AUTH": "ann:pw-alpha, bob:pw:beta"})
    assert s.auth == (("ann", "pw-alpha"), ("bob", "pw:beta"))  # a password may hold a colon
    assert "pw-alpha" not in repr(s) and "beta" not in repr(s)
    users = tmp_path / "users.txt"
    users.write_text("# who may sign in\nann:correct horse, battery\n\nbob:p:ss wörd\n", encoding="utf-8")
    assert Settings.from_env({"ZOO_AUTH": f"@{users}"}).auth == USERS
    users.write_text("ann:fine\nbob-without-password\n")
    with pytest.raises(InvalidInput) as err:
        Settings.from_env({"ZOO_AUTH": f"@{users}"})
    assert "<line 2 of users.txt>" in str(err.value) and "must be user:password" in str(err.value)
    assert "fine" not in str(err.value)
    with pytest.raises(InvalidInput) as err:
        Settings.from_env({"ZOO_AUTH": "ann:secret1,ann:secret2"})
    assert "user ann" in str(err.value) and "twice" in str(err.value) and "secret" not in str(err.value)
    with pytest.raises(InvalidInput, match="cannot be read"):
        Settings.from_env({"ZOO_AUTH": f"@{tmp_path / 'missing.txt'}"})
    with pytest.raises(InvalidInput, match="no user:password line"):
        (tmp_path / "empty.txt").write_text("# nobody\n")
        Settings.from_env({"ZOO_AUTH": f"@{tmp_path / 'empty.txt'}"})


def test_basic_credentials_are_parsed_and_checked() -> None:
    assert basic_credentials([basic("bob", "p:ss wörd")]) == ("bob", "p:ss wörd")
    assert basic_credentials([(b"authorization", b"Bearer abc")]) is None
    assert basic_credentials([(b"authorization", b"Basic not-base64!")]) is None
    assert basic_credentials([(b"cookie", b"a=b")]) is None
    assert check_password(USERS, "ann", "correct horse, battery") and check_password(USERS, "bob", "p:ss wörd")
    assert not check_password(USERS, "ann", "p:ss wörd")  # another user's password
    assert not check_password(USERS, "ann", "correct horse") and not check_password(USERS, "", "")
    assert "battery" not in repr(AuthMiddleware(lambda *a: None, USERS))


# ---------------------------------------------------------------------------- a signed-in app


@pytest.fixture(scope="module")
def signed_in_app(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> AppServer:
    from servers import start_app

    folder = tmp_path_factory.mktemp("auth")
    users = folder / "users.txt"
    users.write_text("\n".join(f"{u}:{p}" for u, p in USERS) + "\n", encoding="utf-8")
    env = clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="1", ZOO_CACHE_DIR=str(model_cache_dir), ZOO_AUTH=f"@{users}",
                    ZOO_PLUGINS="text-classification,text-to-image")
    with start_app(base_env=env, log=folder / "app.log") as server:
        yield server


ANN = httpx.BasicAuth(*USERS[0])


@pytest.mark.app
def test_without_credentials_everything_refuses(signed_in_app: AppServer) -> None:
    url = signed_in_app.url
    page = httpx.get(url)
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")  # the login form
    assert "Text classification" not in page.text and "text_classification" not in page.text  # no tab, no API
    assert 'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};' in page.text  # not the list
    for path in ("config", "gradio_api/info"):
        assert httpx.get(url + path).status_code == 401
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):  # gradio answers a wrong password with 400
        Client(url, auth=(USERS[0][0], "wrong"), verbose=False)
    mcp = httpx.post(url + "gradio_api/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                     headers={"Accept": "application/json, text/event-stream"})
    assert mcp.status_code == 401 and mcp.headers["www-authenticate"].startswith('Basic realm="Model Zoo"')
    assert "requires sign-in (ZOO_AUTH)" in mcp.json()["detail"]
    with pytest.raises(BaseException) as err:  # the mcp client's task group wraps the HTTP error
        list_tools(url)
    assert "401" in repr(err.value)
    with pytest.raises(BaseException) as err:
        list_tools(url, auth=httpx.BasicAuth("ann", "wrong"))
    assert "401" in repr(err.value)
    for path in ("gradio_api/mcp/schema", "gradio_api/mcp/sse", "gradio_api/run-history/records"):
        assert httpx.get(url + path).status_code == 401, path
    for method, path in (("GET", "v1/models"), ("POST", "v1/chat/completions"), ("POST", "v1/images/generations")):
        refused = httpx.request(method, url + path, json={"model": "", "messages": []})
        assert refused.status_code == 401, path
        error = refused.json()["error"]  # OpenAI's error format, as the /v1 routes answer
        assert error["type"] == "authentication_error" and "HTTP Basic" in error["message"]
    assert httpx.get(url + "v1/models", auth=httpx.BasicAuth("bob", "wrong")).status_code == 401


@pytest.mark.app
def test_with_credentials_the_page_api_and_mcp_work(signed_in_app: AppServer) -> None:
    url = signed_in_app.url
    # HTTP Basic: the page with its tabs, the config, gradio's API.
    page = httpx.get(url, auth=ANN)
    assert page.status_code == 200 and "Text classification" in page.text
    assert httpx.get(url + "config", auth=ANN).status_code == 200
    # Gradio's login form (what the browser does): its cookie opens the app and MCP.
    with httpx.Client(base_url=url) as browser:
        assert browser.post("login", data={"username": USERS[1][0], "password": "nope"}).status_code == 400
        assert browser.post("login", data={"username": USERS[1][0], "password": USERS[1][1]}).json() == {"success": True}
        assert browser.get("config").status_code == 200
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    assert set(list_tools(url, headers={"Cookie": cookie})) == {"text_classification", "text_to_image"}
    from gradio_client import Client

    client = Client(url, auth=USERS[1], verbose=False)
    labels, _details = client.predict(text="What a lovely day", api_name="/text_classification")
    assert {c["label"] for c in labels["confidences"]} == {"POSITIVE", "NEGATIVE"}
    # MCP with Basic: list and call; the queued call runs through gradio's loopback client, signed in too.
    tools = list_tools(url, auth=ANN)
    assert set(tools) == {"text_classification", "text_to_image"}
    scored = call_tool(url, "text_classification", {"text": "What a lovely day"}, auth=ANN)
    assert not scored.isError, texts(scored)
    assert {c["label"] for c in json_texts(scored)[0]["confidences"]} == {"POSITIVE", "NEGATIVE"}
    progress: list = []
    painted = call_tool(url, "text_to_image", {"prompt": "a fox", "seed": 1}, auth=ANN, progress=progress)
    assert not painted.isError, texts(painted)
    assert images(painted)[0].size == (64, 64) and progress  # the tiny pipeline's native size
    # The image's URL needs the credentials too (gradio's file route, behind its login).
    link = next(t for t in texts(painted) if t.startswith("Image URL: ")).removeprefix("Image URL: ")
    assert httpx.get(link).status_code == 401 and httpx.get(link, auth=ANN).status_code == 200
    # /v1 with the same credentials: the official openai client lists the models and paints a picture.
    import openai

    basic = "Basic " + base64.b64encode(f"{USERS[0][0]}:{USERS[0][1]}".encode()).decode()
    api = openai.OpenAI(base_url=f"{url}v1", api_key="unused", max_retries=0, timeout=300,
                        default_headers={"Authorization": basic})
    listed = {m.id: m for m in api.models.list().data}
    assert "tiny:text-to-image" in listed, sorted(listed)
    made = api.images.generate(prompt="a fox", size="96x64", response_format="b64_json")
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(made.data[0].b64_json))).size == (96, 64)
    with pytest.raises(openai.AuthenticationError):  # a wrong password still refuses, in OpenAI's format
        openai.OpenAI(base_url=f"{url}v1", api_key="unused", max_retries=0, default_headers={
            "Authorization": "Basic " + base64.b64encode(b"ann:wrong").decode()}).models.list()


@pytest.mark.app
def test_no_password_reaches_the_log(signed_in_app: AppServer) -> None:
    httpx.get(signed_in_app.url + "v1/models", auth=httpx.BasicAuth("ann", "a-wrong-guess-123"))
    httpx.get(signed_in_app.url + "config", auth=ANN)
    log = signed_in_app.log_text()
    secrets = [p for _, p in USERS] + ["a-wrong-guess-123", base64.b64encode(b"ann:" + USERS[0][1].encode()).decode()]
    assert log and not [s for s in secrets if s in log]


@pytest.mark.app
def test_a_bad_zoo_auth_stops_the_start_naming_the_line(app_factory, tmp_path: Path) -> None:  # noqa: ANN001
    users = tmp_path / "users.txt"
    users.write_text("ann:hunter2-secret\nbob\n")
    with pytest.raises(AssertionError) as err:
        app_factory(base_env=clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="1", ZOO_PLUGINS="text-classification",
                                       ZOO_AUTH=f"@{users}"))
    assert "exited with" in str(err.value) and "<line 2 of users.txt>" in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.browser
def test_the_login_form_opens_the_app_in_a_browser(signed_in_app: AppServer) -> None:
    from playwright.sync_api import sync_playwright

    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, PageErrors

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(30_000)
            errors = PageErrors()
            errors.attach(page)
            page.goto(signed_in_app.url)
            page.get_by_label("username").fill(USERS[0][0])
            page.get_by_label("password").fill("wrong")
            page.get_by_role("button", name="Login").click()
            page.get_by_text("Incorrect Credentials").wait_for()
            assert page.locator("button[role=tab]").count() == 0 and "Text classification" not in page.inner_text("body")
            page.get_by_label("username").fill(USERS[0][0])  # the form clears it after a failed try
            page.get_by_label("password").fill(USERS[0][1])
            page.get_by_role("button", name="Login").click()
            page.wait_for_selector("button[role=tab]")
            assert "Text classification" in page.inner_text("body")
            assert sorted(page.evaluate("Object.keys(window.gradio_api_info.named_endpoints)")) == [
                "/text_classification", "/text_to_image"]  # signed in, the page has its API description again
            # The wrong password's 400 aside, nothing failed: the login page asked for nothing it was refused.
            assert [e for e in errors.entries if "status of 400" not in e] == [], errors.entries
        finally:
            browser.close()


def test_the_middleware_refuses_before_routing_and_takes_the_api_key_under_v1() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    def ok(request):  # noqa: ANN001, ANN202
        return PlainTextResponse("routed")

    app = Starlette(routes=[Route("/v1/models", ok), Route("/gradio_api/mcp/", ok), Route("/open", ok)],
                    middleware=[Middleware(AuthMiddleware, users=USERS, api_key="sk-zoo-key")])
    client = TestClient(app)
    assert client.get("/open").text == "routed"  # gradio's own routes: gradio's login decides
    assert client.get("/v1/models").status_code == 401 and client.get("/gradio_api/mcp/").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer sk-zoo-key"}).text == "routed"
    assert client.get("/v1/models", headers={"Authorization": "Bearer sk-zoo-kex"}).status_code == 401
    # The key opens /v1 only; MCP takes the users' credentials.
    assert client.get("/gradio_api/mcp/", headers={"Authorization": "Bearer sk-zoo-key"}).status_code == 401
    assert client.get("/gradio_api/mcp/", auth=USERS[1]).text == "routed"
    assert client.get("/v1/models", auth=USERS[0]).text == "routed"
    assert client.get("/v1/models", auth=(USERS[0][0], USERS[1][1])).status_code == 401

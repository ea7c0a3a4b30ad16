"""Packaging: pyproject.toml (the package `model-zoo`), the wheel it builds, and the zoo installed from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import zoo
from zoo.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_pyproject_declares_the_package_the_command_and_the_builtin_entry_points() -> None:
    assert PROJECT["name"] == "model-zoo" and PROJECT["requires-python"] == ">=3.10"
    assert PROJECT["dynamic"] == ["version"] and PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "zoo.__version__"}
    assert PROJECT["scripts"] == {"zoo": "zoo.cli:main"}
    entry_points = PROJECT["entry-points"]["zoo.plugins"]
    assert entry_points["chat"] == "plugins.chat"
    assert sorted(type(p).__module__ for p in Registry.builtin().plugins()) == sorted(entry_points.values())


def test_dependencies_are_the_runtime_pins_of_requirements_txt() -> None:
    pins = [line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert PROJECT["dependencies"] == [p for p in pins if p]
    assert not any(d.startswith("llama-cpp-python") for d in PROJECT["dependencies"])  # compiled by make


def test_every_package_folder_is_packaged() -> None:
    """A new folder with an __init__.py under zoo/ or plugins/ must be listed, or the wheel leaves it out."""
    folders = {".".join(p.parent.relative_to(ROOT).parts) for top in ("zoo", "plugins")
               for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts}
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert folders <= packages
    assert packages - folders == {"zoo.space_templates"}  # spaces/templates, mapped by package-dir
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"zoo.space_templates": "spaces/templates"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout (building writes build/ and *.egg-info next to the sources)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("zoo", "plugins", "spaces"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: the venv's setuptools builds it, so the test needs no network
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, text=True, timeout=300)
    (built,) = out.glob("model_zoo-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_the_zoo_the_plugins_the_templates_and_the_entry_points(wheel: Path) -> None:
    assert wheel.name == f"model_zoo-{zoo.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"model_zoo-{zoo.__version__}.dist-info"
        entry_points = z.read(f"{info}/entry_points.txt").decode()
        metadata = z.read(f"{info}/METADATA").decode()
    sources = {p.relative_to(ROOT).as_posix() for top in ("zoo", "plugins") for p in (ROOT / top).rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources <= names and "zoo/models/manager.py" in names and "plugins/chat.py" in names
    assert {"zoo/space_templates/app.py", "zoo/space_templates/README.md.tmpl"} <= names
    assert not {n for n in names if n.startswith(("tests/", "bench/", "spaces/")) or n.endswith(".pyc")}
    assert "[console_scripts]\nzoo = zoo.cli:main" in entry_points
    listed = entry_points.split("[zoo.plugins]\n", 1)[1].split("\n\n", 1)[0].strip().splitlines()
    assert dict(line.split(" = ") for line in listed) == PROJECT["entry-points"]["zoo.plugins"]
    assert "Name: model-zoo" in metadata and "Requires-Dist: gradio==" in metadata


@pytest.mark.slow
def test_installed_wheel_finds_its_plugins_in_its_own_metadata(wheel: Path, tmp_path: Path) -> None:
    """Installed (no checkout, no pyproject.toml beside the package): `zoo list` shows every built-in plugin."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    assert not (target / "pyproject.toml").exists() and (target / "zoo" / "space_templates" / "app.py").is_file()
    env = {k: v for k, v in os.environ.items() if k not in {"ZOO_PLUGINS", "ZOO_PLUGINS_DENY"}}
    env |= {"PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "ZOO_PLUGIN_SOURCES": "builtin"}
    run = subprocess.run([sys.executable, "-m", "zoo", "list", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    listing = json.loads(run.stdout)
    assert listing["api_version"] == zoo.API_VERSION and listing["quarantined"] == []
    rows = listing["plugins"]
    assert [r["task"] for r in rows] == Registry.builtin().tasks()
    assert {(r["package"], r["version"], r["api_version"]) for r in rows} == {("model-zoo", zoo.__version__, 2)}
    where = subprocess.run([sys.executable, "-c", "import zoo.registry as r; print(r.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(target / "zoo" / "registry.py")  # the installed copy ran, not the checkout

"""llama.cpp as the zoo installs and runs it: a portable build, a CPU variant the machine grants, right answers.

None of these results depends on the CPU model: the variant checks compare what was chosen with
what this machine grants, whatever that is, and the accuracy check compares two backends on the
same weights.
"""

from __future__ import annotations

import platform
import re

import pytest

from facts import FACTS, is_right
from zoo.models import ggml

SAPPHIRE_RAPIDS = {"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni", "avx512f", "avx512cd", "avx512vl",
                   "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"}


def test_variant_pick_follows_what_the_machine_grants_not_what_it_advertises() -> None:
    every = list(ggml.X86_VARIANTS)
    allow_all = ggml.granted_features(SAPPHIRE_RAPIDS, probe=lambda family: True)
    assert ggml.best_x86_variant(every, allow_all) == "sapphirerapids"
    # The VM case of the issue: AMX advertised, tile instructions refused.
    no_amx = ggml.granted_features(SAPPHIRE_RAPIDS, probe=lambda family: family != "amx_tile")
    assert "amx_int8" not in no_amx and ggml.best_x86_variant(every, no_amx) == "zen4"
    no_zmm = ggml.granted_features(SAPPHIRE_RAPIDS, probe=lambda family: family not in ("avx512", "amx_tile"))
    assert ggml.best_x86_variant(every, no_zmm) == "alderlake"
    avx2_only = ggml.granted_features({"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"}, probe=lambda f: True)
    assert ggml.best_x86_variant(every, avx2_only) == "haswell"
    assert ggml.best_x86_variant(every, ggml.granted_features(set(), probe=lambda f: True)) == "x64"
    # Only variants that were built count.
    assert ggml.best_x86_variant(["x64", "haswell"], allow_all) == "haswell"


def test_the_probe_catches_an_instruction_that_kills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ggml._PROBES, "illegal", "0f0bc3")  # ud2: raises SIGILL on every x86 CPU
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.fail("the instruction probes are x86 machine code; this test needs an x86-64 machine")
    assert ggml.probe_family("illegal") is False
    assert ggml.probe_family("avx") is ("avx" in ggml.cpu_flags())


def test_openmp_wait_policy_is_set_without_overriding_the_operator() -> None:
    env: dict[str, str] = {}
    ggml.omp_environment(env)
    assert int(env["GOMP_SPINCOUNT"]) < 300_000  # shorter than libgomp's default spin
    mine = {"GOMP_SPINCOUNT": "7"}
    ggml.omp_environment(mine)
    assert mine["GOMP_SPINCOUNT"] == "7"


def test_installed_llama_cpp_is_the_portable_runtime_dispatch_build() -> None:
    build = ggml.installed_build()
    assert build.lib_dir is not None, "llama-cpp-python is not installed: run `make install`"
    assert build.problem is None, f"{build.problem}: run `make install` to build it portably"
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert {"x64", "haswell", "skylakex", "sapphirerapids"} <= set(build.variants), build.variants


# llama.cpp's system-info names for the instruction sets, as the kernel's flags name them.
_SYSINFO_FLAGS = {"AVX": "avx", "AVX2": "avx2", "AVX_VNNI": "avx_vnni", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
                  "AVX512": "avx512", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni",
                  "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8"}


@pytest.mark.real
def test_llama_cpp_runs_only_instructions_this_machine_grants(model_cache_dir) -> None:
    """The variant in use is the best one that both the instruction probes and a real decode allowed."""
    import json

    from zoo.models.sources import packaged_path

    model = packaged_path("smollm2-135m-instruct")
    build = ggml.prepare(model_cache_dir, model)
    info = ggml.system_info()
    used = {name for name, on in re.findall(r"([A-Z0-9_]+) = (\d)", info) if on == "1"}
    assert "CPU" in info
    if platform.machine().lower() in ("x86_64", "amd64"):
        granted = ggml.granted_features()
        wide = {_SYSINFO_FLAGS[n] for n in used if n in _SYSINFO_FLAGS}
        assert wide <= granted, f"llama.cpp uses {sorted(wide - granted)}, which this machine does not grant: {info}"
        verdicts = json.loads(ggml._verdicts_file(model_cache_dir, build).read_text())
        ranked = ggml.ranked_x86_variants(list(build.variants), granted)
        # Every better-ranked variant was tried and failed; the chosen one decoded.
        better = ranked[:ranked.index(build.chosen)]
        assert all(not verdicts[v]["ok"] for v in better), verdicts
        assert build.chosen == "x64" or verdicts[build.chosen]["ok"], verdicts
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=128, n_threads=2, verbose=False)  # in this process, on that variant
    text = llm.create_completion("One, two, three,", max_tokens=6, temperature=0.0, top_k=1)["choices"][0]["text"]
    llm.close()
    assert re.search(r"four|4", text, re.IGNORECASE), text


@pytest.mark.real
def test_default_gguf_path_is_at_least_as_right_as_transformers_fp32(settings) -> None:
    """The fact set on the packaged SmolLM2: the llama.cpp default path against transformers fp32, same weights."""
    from zoo.runner import Zoo

    scores: dict[str, list[str]] = {}
    for backend in ("llama-cpp", "transformers"):
        zoo = Zoo(settings.replace(gguf_backend=backend), registry=None)
        wrong = []
        for question, pattern in FACTS:
            answer = zoo.run("text-generation", prompt=question, temperature=0, max_new_tokens=40)["text"]
            if not is_right(answer, pattern):
                wrong.append(f"{question} -> {answer!r}")
        scores[backend] = wrong
        zoo.models.cache.clear()
    right = {b: len(FACTS) - len(w) for b, w in scores.items()}
    print(f"\nfacts right of {len(FACTS)}: {right}\nwrong (llama.cpp): {scores['llama-cpp']}\n"
          f"wrong (transformers): {scores['transformers']}")
    assert right["llama-cpp"] >= right["transformers"], scores
    assert right["transformers"] >= len(FACTS) * 0.6, scores  # the set is one the model mostly knows
    assert not any(w.startswith("What is the capital of France?") for w in scores["llama-cpp"])


def test_a_host_specific_llama_cpp_is_not_used_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A llama-cpp-python built some other way (one CPU library, maybe -march=native) leaves GGUF to transformers."""
    from zoo.models import loaders

    native = ggml.Build(tmp_path, dispatch=False, variants=())
    monkeypatch.setattr(ggml, "installed_build", lambda: native)
    ctx = loaders.LoadContext(device="cpu", dtype=None, cache_dir=tmp_path)
    assert native.problem and "SIGILL" in native.problem
    assert loaders.gguf_backend(ctx) == "transformers"
    assert loaders.gguf_backend(loaders.LoadContext(device="cpu", dtype=None, cache_dir=tmp_path,
                                                    gguf_backend="llama-cpp")) == "llama-cpp"  # the operator's call
    portable = ggml.Build(tmp_path, dispatch=True, variants=("x64", "haswell"), variant_dir=tmp_path)
    monkeypatch.setattr(ggml, "installed_build", lambda: portable)
    assert loaders.gguf_backend(ctx) == "llama-cpp"

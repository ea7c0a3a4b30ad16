"""Cold start with every tab: `python app.py` (every built-in plugin in its group, tiny models, offline, MCP on)
answers `/` within 1.3 times the start of a bare gradio app of 25 tabs, measured side by side
(bench/coldstart_tabs.py; `python -m bench --only coldstart_tabs` measures it for BENCHMARKS.md, with a row
against a bare app made with the collector paused too)."""

from __future__ import annotations

import pytest

from bench.coldstart_tabs import BARE_TABS, TARGET, measure

pytestmark = pytest.mark.slow


def test_the_app_with_every_tab_starts_within_1_3_times_a_bare_25_tab_app() -> None:
    # Medians of 7 starts each, alternating: one busy moment on a shared machine does not decide it.
    (row,) = measure(runs=7, paused=False)
    assert row["value"] > 0 and row["baseline_value"] > 0
    assert str(BARE_TABS) in row["baseline"] and "24 plugin tabs" in row["name"]
    print(f"\ncold start: zoo {row['value']:.2f} s, bare {row['baseline_value']:.2f} s, ratio {row['ratio']:.3f} "
          f"({row['note']})")
    assert row["ratio"] <= TARGET, (f"python app.py took {row['value']:.2f} s to answer /, {row['ratio']:.2f} times "
                                    f"the bare app's {row['baseline_value']:.2f} s (at most {TARGET}); {row['note']}")

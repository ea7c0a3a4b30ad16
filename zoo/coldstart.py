"""Start fast: the garbage collector waits while the app's imports and pages are made.

Everything `import gradio` (and torch, transformers...) creates, and every component of every tab, lives as
long as the server: there is nothing for the collector to free there. Left on, it walks that growing heap again
and again while it is made; with every tab that was 0.7 s of `import gradio` and 0.5 s of building the page on
a 2-core machine (bench/coldstart_tabs.py). So entry points (app.py, `zoo serve`, a Space's app.py) make the app
inside `collector_paused()`: the collector is off meanwhile, and what was made is then frozen out of its way
(`gc.freeze`), so that its later collections look only at what requests create.

This module imports nothing heavy: import it before gradio.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the garbage collector for the block; then freeze what it made (long-lived) and resume."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()

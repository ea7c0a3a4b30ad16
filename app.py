"""Model Zoo: `python app.py` serves every registered plugin as a tab (and an API endpoint)."""

import gc
import sys

import gradio  # noqa: F401  (here, so that gc.freeze() below covers it: most of what the imports make is gradio's)

from zoo.runner import Zoo
from zoo.settings import Settings
from zoo.ui import build_demo, launch

# What the imports make, and the tabs built next, live as long as the server: the collector has nothing to find
# there, and walking it again and again while every tab adds its thousands of objects cost half a second of the
# cold start (bench/coldstart_tabs.py). So the imports' objects are frozen out of its way, and it waits for the tabs.
gc.freeze()
gc.disable()
zoo = Zoo(Settings.from_env(argv=sys.argv[1:] if __name__ == "__main__" else None))
demo = build_demo(zoo)
gc.enable()

if __name__ == "__main__":
    launch(demo, zoo)

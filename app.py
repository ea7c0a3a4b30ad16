"""Model Zoo: `python app.py` serves every registered plugin as a tab (and an API endpoint)."""

import sys

from zoo.coldstart import collector_paused

# The imports and the tabs live as long as the server: they are made with the garbage collector paused, then
# frozen out of its way (zoo/coldstart.py; over a second of cold start, bench/coldstart_tabs.py).
with collector_paused():
    from zoo.runner import Zoo
    from zoo.settings import Settings
    from zoo.ui import build_demo, launch

    zoo = Zoo(Settings.from_env(argv=sys.argv[1:] if __name__ == "__main__" else None))
    demo = build_demo(zoo)

if __name__ == "__main__":
    launch(demo, zoo)

"""Helpers for the browser tier: drive Debian's Chromium with Playwright, read the zoo's tabs.

The zoo's UI gives every generated component a stable DOM id (`zoo-<task>-in-<name>`,
`zoo-<task>-out-<name>`, `zoo-<task>-run`, see zoo.ui.TabBuilder.tag) and every tab
panel the id `tab-<task>`; these helpers find things by those ids, never by layout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Playwright's own browser download does not work here; Debian's Chromium does, with these flags.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]

# Gradio's status tracker marks a running event with these, inside the components it will update.
BUSY = ".wrap.pending, .wrap.generating, .progress-text, .eta-bar"


# --------------------------------------------------------------------------- third-party plugins


def install_fake_distribution(root: Path, module: str, source: str, entry: str) -> None:
    """Write a module plus a *.dist-info with entry_points.txt, as pip would for a third-party plugin."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{entry}\n")


# --------------------------------------------------------------------------- the page


@dataclass
class PageErrors:
    """Every console error and uncaught exception a page logs (nothing is filtered here)."""

    entries: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        """Start collecting from `page`."""
        page.on("console", lambda m: self.entries.append(f"console.{m.type}: {m.text} @ {m.location}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.entries.append(f"pageerror: {e}"))


class ZooPage:
    """One browser page on the zoo app, with helpers that speak in tasks and field names."""

    def __init__(self, page: Any, url: str):
        self.page = page
        self.url = url

    def open(self) -> "ZooPage":
        """Load the app and wait for the tab bar."""
        self.page.goto(self.url)
        self.page.wait_for_selector("button[role=tab]", timeout=30_000)
        return self

    # ------------------------------------------------------------------ tabs
    # The tab bar holds a tab per group (`#group-<id>`, zoo.plugin.GROUPS); each holds a tab bar of its plugins'
    # tabs (`#tab-<task>`). Gradio draws only the open group's tabs.
    def tab_titles(self) -> list[str]:
        """The group tabs' titles, then the open group's tab titles, "More tabs" menus included."""
        # Gradio keeps a hidden copy of the full tab bar to measure overflow; it lists every tab.
        return self.page.evaluate(
            "[...document.querySelectorAll('.tab-container.visually-hidden button')].map(b => b.textContent.trim())")

    def group_titles(self) -> list[str]:
        """The group tabs' titles, in order."""
        return self.page.evaluate(
            "[...document.querySelectorAll('#zoo-groups .tab-container.visually-hidden')][0]"
            "? [...document.querySelectorAll('#zoo-groups .tab-container.visually-hidden')[0]"
            ".querySelectorAll('button')].map(b => b.textContent.trim()) : []")

    def open_group(self, title: str) -> Any:
        """Select a group tab by its title; return its panel (holding that group's tab bar)."""
        button = self.page.locator("div[role=tablist] button[role=tab][id^='group-']", has_text=title).first
        button.click()
        panel = self.page.locator(f"#{button.get_attribute('id').removesuffix('-button')}")
        panel.wait_for(state="visible", timeout=10_000)
        panel.locator(".tab-container.visually-hidden").first.wait_for(state="attached", timeout=10_000)
        return panel

    def open_group_titles(self) -> list[str]:
        """The tab titles of the open group, "More tabs" menu included."""
        return self.page.evaluate(
            "(() => { const open = [...document.querySelectorAll('[id^=group-][role=tabpanel], .tabitem[id^=group-]')]"
            ".find(p => p.offsetParent !== null);"
            " const bar = open && open.querySelector('.tab-container.visually-hidden');"
            " return bar ? [...bar.querySelectorAll('button')].map(b => b.textContent.trim()) : []; })()")

    def tabs_by_group(self) -> dict[str, list[str]]:
        """{group title: its tab titles}, opening each group in turn."""
        return {group: (self.open_group(group), self.open_group_titles())[1] for group in self.group_titles()}

    def open_tab(self, title: str, panel_id: str) -> Any:
        """Select a tab by its title, in whichever group holds it (the open group is looked in first), through
        its group's overflow menu when it is folded there; return its panel."""
        panel = self.page.locator(f"#{panel_id}")
        if not (panel.count() and panel.first.is_visible()):
            if title not in self.open_group_titles():
                for group in self.group_titles():
                    self.open_group(group)
                    if title in self.open_group_titles():
                        break
                else:
                    raise AssertionError(f"no group holds a tab titled {title!r}: {self.tabs_by_group()}")
            group_panel = self.page.locator("[id^=group-]:visible", has=self.page.locator(
                ".tab-container.visually-hidden button", has_text=title)).last
            bar = group_panel.locator("div[role=tablist] button[role=tab]", has_text=title)
            if bar.count() and bar.first.is_visible():
                bar.first.click()
            else:
                group_panel.locator("button[aria-label='More tabs']").first.click()
                self.page.locator(".overflow-dropdown button", has_text=title).first.click()
        panel.wait_for(state="visible", timeout=10_000)
        return panel

    # ------------------------------------------------------------------ inputs
    def example_rows(self, panel: Any) -> Any:
        """The clickable examples of a tab (table rows, or buttons for one-column examples)."""
        return panel.locator("tr.tr-body:has(td[data-testid^='dataset-cell']), button.gallery-item")

    def load_example(self, panel: Any, index: int = 0, texts: Sequence[str] = (), media: Sequence[Any] = (),
                     timeout: float = 15.0) -> None:
        """Click an example, then wait until its `texts` show in the tab's text boxes and its `media` inputs fill.

        Gradio fills the inputs a moment after the click; pressing Run before that runs on empty inputs.
        """
        rows = self.example_rows(panel)
        assert rows.count() > index, f"the tab has {rows.count()} examples, wanted #{index + 1}"
        rows.nth(index).click()
        deadline = time.perf_counter() + timeout
        for text in texts:
            while text not in panel.evaluate("e => [...e.querySelectorAll('textarea, input')].map(x => x.value)"):
                assert time.perf_counter() < deadline, f"the example did not fill in {text[:40]!r}"
                time.sleep(0.05)
        for box in media:
            box.locator("img, audio, [data-testid=waveform-controls]").first.wait_for(
                state="attached", timeout=max(1.0, deadline - time.perf_counter()) * 1000)

    def field(self, task: str, name: str, output: bool = False) -> Any:
        """A generated component by task and field name."""
        return self.page.locator(f"#zoo-{task}-{'out' if output else 'in'}-{name}")

    def fill_text(self, task: str, name: str, text: str) -> None:
        """Type into a text field."""
        self.field(task, name).locator("textarea, input").first.fill(text)

    def upload(self, task: str, name: str, path: Path) -> None:
        """Upload a file into an image or audio input, and wait until the component shows it."""
        box = self.field(task, name)
        box.locator("input[type=file]").first.set_input_files(str(path))
        box.locator("img, audio, .waveform-container, [data-testid=waveform-controls]").first.wait_for(
            state="attached", timeout=20_000)

    def set_number(self, task: str, name: str, value: float, timeout: float = 10.0) -> None:
        """Set a slider or number field (its number box) to `value`, and check that the component took it."""
        field = self.field(task, name)
        box = field.locator("input[type=number]").first
        shown = field.locator("input[type=range]") if field.locator("input[type=range]").count() else box
        deadline = time.perf_counter() + timeout
        # An accordion that has just opened may still re-render its children: retry until the value sticks.
        while True:
            box.fill(str(value))
            box.press("Enter")
            time.sleep(0.1)
            if float(shown.first.input_value() or "nan") == float(value):
                return
            assert time.perf_counter() < deadline, f"{name} did not take the value {value}"

    def open_accordion(self, panel: Any, label: str) -> None:
        """Unfold an accordion (e.g. "Advanced options") by its label."""
        panel.locator("button.label-wrap", has_text=label).first.click()

    # ------------------------------------------------------------------ running
    def run(self, task: str, panel: Any) -> None:
        """Press the tab's main (primary) button."""
        button = self.page.locator(f"#zoo-{task}-run")
        if not button.count():  # a custom tab: its primary button
            button = panel.locator("button.primary:visible").first
        button.click()

    def busy(self, panel: Any) -> bool:
        """True while gradio shows an event of this tab as pending or streaming."""
        return panel.locator(BUSY).count() > 0

    def error_toasts(self) -> list[str]:
        """Texts of the error toasts on screen."""
        return [t.strip() for t in self.page.locator(".toast-body.error").all_inner_texts()]

    def wait_done(self, panel: Any, ready: Callable[[], bool], timeout: float = 120.0) -> float:
        """Wait until `ready()` holds and the tab is idle; fail at once on an error toast. Returns seconds."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            errors = self.error_toasts()
            assert not errors, f"the tab showed an error: {errors}"
            if self.error_status(panel):  # the toast may lag the status by a moment
                time.sleep(0.5)
                raise AssertionError(f"the tab showed an error: {self.error_toasts() or '(no message)'}")
            if not self.busy(panel) and ready():
                return time.perf_counter() - start
            time.sleep(0.05)
        raise AssertionError(f"no result within {timeout}s (busy={self.busy(panel)})")

    def wait_error(self, timeout: float = 30.0) -> str:
        """The text of the first error toast, waiting for it to appear."""
        toast = self.page.locator(".toast-body.error").first
        toast.wait_for(state="visible", timeout=timeout * 1000)
        return toast.inner_text().strip()

    # ------------------------------------------------------------------ outputs
    def text_value(self, locator: Any) -> str:
        """The text of a textbox component (its textarea or input)."""
        box = locator.locator("textarea, input[type=text]").first
        return box.input_value() if box.count() else ""

    def read_output(self, locator: Any, kind: str) -> Any:
        """What an output component shows, by zoo field type; empty ("", [], {}) when it shows nothing."""
        if not locator.count():
            return ""
        return locator.evaluate(_READ_OUTPUT_JS, kind)

    def error_status(self, panel: Any) -> bool:
        """True when a component of the tab shows gradio's "Error" status."""
        return panel.locator("[data-testid=status-tracker] .error").count() > 0

    def start_sampling(self, locator: Any, script: str, every_ms: int = 20) -> None:
        """Record `script(el)` (a JS expression over `el`) in the page every few ms, keeping each change.

        Sampling in the page catches what Python-side polling would miss (a fast stream, a brief progress text).
        """
        locator.evaluate(f"""el => {{ window.__zooSamples = [];
            window.__zooSampler = setInterval(() => {{ const v = ({script});
                if (window.__zooSamples[window.__zooSamples.length - 1] !== v) window.__zooSamples.push(v); }},
                {every_ms}); }}""")

    def stop_sampling(self) -> list[Any]:
        """Stop the sampler and return what it recorded."""
        return self.page.evaluate("clearInterval(window.__zooSampler); window.__zooSamples")

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot under artifacts/screenshots/ (gitignored: a test artifact)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


# Reads an output component's content from the DOM, per zoo field type (gradio 6 markup).
_READ_OUTPUT_JS = """
(el, kind) => {
  switch (kind) {
    case 'Text': {
      const box = el.querySelector('textarea, input');
      return box ? box.value : '';
    }
    case 'Number': {
      const box = el.querySelector('input');
      return box ? box.value : '';
    }
    case 'Labels': {
      const out = {};
      for (const row of el.querySelectorAll('.confidence-set')) {
        const name = row.querySelector('dt')?.textContent.trim();
        const pct = row.querySelector('dd')?.textContent.trim();
        if (name) out[name] = pct;
      }
      return out;
    }
    case 'Highlight':
      return [...el.querySelectorAll('.token')].map(t => [
        t.querySelector('.text')?.textContent ?? '',
        t.classList.contains('highlighted') ? (t.querySelector('.label')?.textContent.trim() ?? '') : null]);
    case 'Table':  // the rendered rows of gradio's virtual table (its hidden sizing <tbody> holds samples)
      return [...el.querySelectorAll('.virtual-body [role=row]')].map(
        r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.textContent.trim()));
    case 'Image':
    case 'Gallery':
      return [...el.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0)
        .map(i => ({src: i.src, width: i.naturalWidth, height: i.naturalHeight}));
    case 'Audio':
    case 'File': {
      const link = el.querySelector('a[data-testid=download-link]');
      return link ? {href: link.href, name: link.getAttribute('download') || '',
                     duration: el.querySelector('#duration')?.textContent.trim() ?? ''} : {};
    }
    default: {  // Json and anything else: the visible text without the label
      const label = el.querySelector('[data-testid=block-label]')?.textContent.trim() ?? '';
      return el.innerText.replace(label, '').trim();
    }
  }
}
"""

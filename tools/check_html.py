"""Open every page of the built book in headless Chromium, as a reader would, and fail on what a reader must not see.

    python tools/check_html.py [--html _build/html] [--timeout 60]     # what `make check-html` runs

For each page, after it has loaded and MathJax has finished typesetting, it fails when:

- an equation is left as raw TeX (a Sphinx ``.math`` element MathJax did not typeset, or ``$$``, ``\\(``, ``\\[``,
  ``\\begin{`` in the visible text outside code);
- an image does not load (``naturalWidth`` 0);
- a visible output shows an error or a warning (stderr or traceback output areas, ``...Warning:`` text);
- a plumbing cell is visible (the Colab setup cell, papermill's injected parameters, the timing cell).

It needs Debian's ``chromium`` and ``chromium-driver`` (Selenium drives them; no browser is downloaded). When they
are not installed it says so and exits 0, so the check is skipped, never faked: ``make test`` runs the checks
that need no browser (tests/test_book_rendering.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")

# Runs in the page; resolves with a JSON report. Waits for MathJax 3 (when the page loads it) to finish.
PROBE = r"""
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0] * 1000;
function visible(e) { return !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length); }
function report() { try { reportOrThrow(); } catch (e) { done(JSON.stringify({probe_error: String(e)})); } }
function reportOrThrow() {
  const r = {mathjax: (window.MathJax && window.MathJax.version) || null, raw_tex: [], broken_images: [],
             error_outputs: [], plumbing: []};
  const mathjaxScript = [...document.scripts].map(s => s.src).find(s => /mathjax|tex-.*\.js/i.test(s)) || null;
  r.mathjax_src = mathjaxScript;
  document.querySelectorAll('.math').forEach(e => {
    if (!e.querySelector('mjx-container')) r.raw_tex.push(e.textContent.trim().slice(0, 80));
  });
  const skip = 'PRE, CODE, SCRIPT, STYLE, TEXTAREA, MJX-CONTAINER, .highlight, .math';
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const tex = /\$\$|\\\(|\\\[|\\begin\{/;
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (tex.test(n.nodeValue) && !n.parentElement.closest(skip) && visible(n.parentElement))
      r.raw_tex.push(n.nodeValue.trim().slice(0, 80));
  }
  document.querySelectorAll('img').forEach(i => {
    if (!i.complete || i.naturalWidth === 0) r.broken_images.push(i.getAttribute('src'));
  });
  document.querySelectorAll('.cell_output .stderr, .cell_output .traceback, .cell_output .error')
    .forEach(e => { if (visible(e)) r.error_outputs.push(e.className + ': ' + e.textContent.trim().slice(0, 120)); });
  document.querySelectorAll('.cell_output').forEach(e => {
    const m = e.textContent.match(/\b\w*Warning\b:|Traceback \(most recent call last\)/);
    if (m && visible(e)) r.error_outputs.push('output text: ' + e.textContent.trim().slice(0, 120));
  });
  document.querySelectorAll('.cell').forEach(c => {
    if (!visible(c)) return;
    const tags = [...c.classList].filter(k => /^tag_(setup|injected-parameters|timing)$/.test(k));
    const src = (c.querySelector('.cell_input') || {textContent: ''}).textContent;
    if (tags.length || /google\.colab|^\s*# Parameters/m.test(src) || /chapter_start/.test(src))
      r.plumbing.push((tags.join(' ') || 'cell') + ': ' + src.trim().slice(0, 80));
  });
  done(JSON.stringify(r));
}
function wait() {
  const needsMath = document.querySelector('.math') !== null;
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(report, report); return; }
  if (!needsMath || Date.now() > deadline) { report(); return; }
  setTimeout(wait, 100);
}
if (document.readyState === 'complete') wait(); else window.addEventListener('load', wait);
"""


def find(names: tuple[str, ...]) -> str | None:
    for n in names:
        path = shutil.which(n) or (n if Path(n).is_file() else None)
        if path:
            return path
    return None


def pages(html: Path) -> list[Path]:
    """Every HTML page of the build, the theme's own folders excluded."""
    skip = {"_static", "_sources", "_images", "_sphinx_design_static"}
    return sorted(p for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


def problems(report: dict[str, Any]) -> list[str]:
    if "probe_error" in report:
        return [f"the page could not be checked: {report['probe_error']}"]
    out = [f"raw TeX: {t!r}" for t in report["raw_tex"]]
    out += [f"image does not load: {s}" for s in report["broken_images"]]
    out += [f"visible error/warning output: {e!r}" for e in report["error_outputs"]]
    out += [f"visible plumbing cell: {p!r}" for p in report["plumbing"]]
    src = report.get("mathjax_src") or ""
    if src.startswith(("http://", "https://")):
        out.append(f"MathJax is loaded from the network: {src}")
    return out


def driver(browser: str, chromedriver: str, timeout: float) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--allow-file-access-from-files", "--window-size=1280,2000"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    d.set_page_load_timeout(timeout)
    d.set_script_timeout(timeout)
    return d


def check(html: Path, timeout: float) -> int:
    browser, chromedriver = find(BROWSERS), find(DRIVERS)
    if browser is None or chromedriver is None:
        print("check-html: SKIPPED: headless Chromium is not installed "
              f"({'chromium' if browser is None else 'chromium-driver'} missing; on Debian: "
              "apt-get install chromium chromium-driver). Nothing was checked.")
        return 0
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("check-html: SKIPPED: the Python package selenium is not installed (pip install selenium).")
        return 0
    if not (html / "index.html").exists():
        print(f"check-html: error: no built book at {html}; run `make book` first", file=sys.stderr)
        return 2
    from selenium.common.exceptions import WebDriverException

    d = driver(browser, chromedriver, timeout)
    failed = 0
    try:
        todo = pages(html)
        print(f"check-html: {len(todo)} pages of {html} in {browser}")
        for page in todo:
            try:
                d.get(page.as_uri())
                # MathJax gets half the time; the probe always answers before the script timeout.
                report = json.loads(d.execute_async_script(PROBE, timeout / 2))
            except WebDriverException as e:
                report = {"probe_error": f"{type(e).__name__}: {e.msg}"}
            found = problems(report)
            name = page.relative_to(html)
            math = f"MathJax {report['mathjax']}" if report.get("mathjax") else "no MathJax"
            print(f"{'FAIL' if found else 'ok  '} {name} ({math})")
            for p in found:
                print(f"     {p}")
            failed += bool(found)
    finally:
        d.quit()
    print(f"check-html: {len(todo) - failed} of {len(todo)} pages clean" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a page may take to load and typeset")
    a = p.parse_args(argv)
    return check(a.html, a.timeout)


if __name__ == "__main__":
    raise SystemExit(main())

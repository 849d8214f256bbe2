"""Save PNGs of the dashboard's main pages from a running server (how the README's pictures are made).

    matchday demo --port 8000 &          # wait for "Dashboard: http://127.0.0.1:8000/"
    .venv/bin/python docs/screenshots/take_screenshots.py http://127.0.0.1:8000 docs/screenshots

Uses Debian's chromium through Playwright's driver (no browser download).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PAGES = {"overview": "/", "deployment": "/deployments/payments?range=1h",
         "drift": "/deployments/payments/drift/amount?range=1h", "rollout": "/deployments/fraud/rollout",
         "models": "/models/demo-fraud", "alerts": "/alerts"}


def main(base: str, folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, path in PAGES.items():
            sep = "&" if "?" in path else "?"
            page.goto(f"{base.rstrip('/')}{path}{sep}refresh=0")
            page.wait_for_function("[...document.querySelectorAll('.chart')].every(c => c.dataset.rendered)")
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
            print(folder / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000", Path(sys.argv[2] if len(sys.argv) > 2
                                                                              else "docs/screenshots"))

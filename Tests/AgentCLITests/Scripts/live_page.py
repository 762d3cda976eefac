#!/usr/bin/env python3
"""Drives headless Chromium (chromium.py) to watch the agent's status page update
itself from the event stream.

usage: live_page.py CHROMIUM SIGNIN_URL [SCREENSHOT.png]
Prints READY once the page says it follows the stream. With SCREENSHOT, saves a
1000x1400 screenshot of the page there, prints SHOT and exits. Otherwise reads one
line of comma-separated event ids from stdin and prints FOUND when a row
#event-<id> is on the page for each, MISSING <ids> if not within 120 s (the bounds
only keep a broken page from hanging the test; a working one is done in well under a
second). ERROR <reason> when Chromium or the protocol fails."""
import sys
from chromium import Chromium, run

executable, url = sys.argv[1], sys.argv[2]
screenshot = sys.argv[3] if len(sys.argv) > 3 else None


def main():
    browser = Chromium(executable)
    try:
        browser.navigate(url)
        if not browser.wait_for("((document.getElementById('live-status')||{}).textContent||'').startsWith('Following')"):
            print("NOT READY", browser.evaluate("(document.getElementById('live-status')||{}).textContent||''"), flush=True)
            raise SystemExit(1)
        print("READY", flush=True)
        if screenshot:
            browser.viewport(1000, 1400)
            browser.screenshot(screenshot)
            print("SHOT", flush=True)
            raise SystemExit(0)
        wanted = [i for i in sys.stdin.readline().strip().split(",") if i]
        check = "[" + ",".join(f"!!document.getElementById('event-{i}')" for i in wanted) + "].every(Boolean)"
        found = browser.wait_for(check) if wanted else True
        missing = [] if found else [i for i in wanted if not browser.evaluate(f"!!document.getElementById('event-{i}')")]
        print("FOUND" if not missing else "MISSING " + ",".join(missing), flush=True)
        rows = browser.evaluate("Array.from(document.querySelectorAll('#live tr')).slice(1,4).map(r=>r.textContent).join(' | ')")
        print("ROWS", rows, flush=True)
    finally:
        browser.close()


run(main)

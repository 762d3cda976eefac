#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe) to
watch the agent's status page update itself from the event stream.

usage: live_page.py CHROMIUM SIGNIN_URL [SCREENSHOT.png]
Prints READY once the page says it follows the stream. With SCREENSHOT, saves a
1000x1400 screenshot of the page there, prints SHOT and exits. Otherwise reads one
line of comma-separated event ids from stdin and prints FOUND when a row
#event-<id> is on the page for each, MISSING <ids> if not within 60 s."""
import base64
import json, os, subprocess, sys, time

chromium, url = sys.argv[1], sys.argv[2]
screenshot = sys.argv[3] if len(sys.argv) > 3 else None
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()
# Chromium reads commands on fd 3 and writes replies on fd 4.
def fds():
    # Pipes are close-on-exec, and dup2 onto the same number keeps that: copy both out of the way first.
    read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)
    os.set_inheritable(3, True)
    os.set_inheritable(4, True)
proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                         "--user-data-dir=" + os.environ.get("LIVE_PAGE_PROFILE", "/tmp/live-page-profile"), "about:blank"],
                        preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        close_fds=False)
os.close(to_chrome_r); os.close(from_chrome_w)
reader = os.fdopen(from_chrome_r, "rb", buffering=0)
buffered = b""
next_id = 0

def send(method, params=None, session=None):
    global next_id, buffered
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session: message["sessionId"] = session
    os.write(to_chrome_w, json.dumps(message).encode() + b"\0")
    while True:
        while b"\0" not in buffered:
            chunk = reader.read(65536)
            if not chunk: raise SystemExit("chromium closed the pipe")
            buffered += chunk
        raw, buffered = buffered.split(b"\0", 1)
        reply = json.loads(raw)
        if reply.get("id") == next_id:
            if "error" in reply: raise SystemExit(f"{method}: {reply['error']}")
            return reply.get("result", {})

def evaluate(session, expression):
    result = send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    return result.get("result", {}).get("value")

try:
    targets = send("Target.getTargets")["targetInfos"]
    page = next(t for t in targets if t["type"] == "page")
    session = send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
    send("Page.enable", {}, session)
    send("Page.navigate", {"url": url}, session)
    deadline = time.time() + 60
    while time.time() < deadline:
        status = evaluate(session, "(document.getElementById('live-status')||{}).textContent||''")
        if status and status.startswith("Following"):
            break
        time.sleep(0.1)
    else:
        print("NOT READY", status, flush=True)
        raise SystemExit(1)
    print("READY", flush=True)
    if screenshot:
        send("Emulation.setDeviceMetricsOverride", {"width": 1000, "height": 1400, "deviceScaleFactor": 1, "mobile": False}, session)
        shot = send("Page.captureScreenshot", {"format": "png"}, session)
        with open(screenshot, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
        print("SHOT", flush=True)
        raise SystemExit(0)
    wanted = [i for i in sys.stdin.readline().strip().split(",") if i]
    deadline = time.time() + 60
    missing = wanted
    while time.time() < deadline and missing:
        missing = [i for i in wanted if not evaluate(session, f"!!document.getElementById('event-{i}')")]
        time.sleep(0.1)
    reloaded = evaluate(session, "performance.getEntriesByType('navigation').length")
    print("FOUND" if not missing else "MISSING " + ",".join(missing), flush=True)
    rows = evaluate(session, "Array.from(document.querySelectorAll('#live tr')).slice(1,4).map(r=>r.textContent).join(' | ')")
    print("ROWS", rows, flush=True)
finally:
    proc.kill()

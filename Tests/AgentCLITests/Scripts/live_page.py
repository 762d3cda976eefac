#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe) to
watch the agent's status page update itself from the event stream.

usage: live_page.py CHROMIUM SIGNIN_URL [SCREENSHOT.png]
Prints READY once the page says it follows the stream. With SCREENSHOT, saves a
1000x1400 screenshot of the page there, prints SHOT and exits. Otherwise reads one
line of comma-separated event ids from stdin and prints FOUND when a row
#event-<id> is on the page for each, MISSING <ids> if not within 120 s (the bounds
only keep a broken page from hanging the test; a working one is done in well under a
second). ERROR <reason> when Chromium or the protocol fails."""
import base64
import json, os, subprocess, sys, time

chromium, url = sys.argv[1], sys.argv[2]
screenshot = sys.argv[3] if len(sys.argv) > 3 else None
# Chromium's own messages (a crashed GPU process, say) go where the test can quote them.
log_path = os.environ.get("LIVE_PAGE_CHROMIUM_LOG")
chromium_log = open(log_path, "wb") if log_path else subprocess.DEVNULL
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
# The GPU watchdog kills a GPU process that a loaded machine has not scheduled for 10 s, and
# after a few such kills Chromium gives up and exits: a clock has no say in a test here.
proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-gpu-watchdog", "--remote-debugging-pipe",
                         "--user-data-dir=" + os.environ.get("LIVE_PAGE_PROFILE", "/tmp/live-page-profile"), "about:blank"],
                        preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=chromium_log,
                        close_fds=False)
os.close(to_chrome_r); os.close(from_chrome_w)
reader = os.fdopen(from_chrome_r, "rb", buffering=0)
buffered = b""
next_id = 0

def fail(reason):
    print("ERROR", reason, flush=True)
    raise SystemExit(1)

def send(method, params=None, session=None, tolerate_error=False):
    global next_id, buffered
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session: message["sessionId"] = session
    os.write(to_chrome_w, json.dumps(message).encode() + b"\0")
    while True:
        while b"\0" not in buffered:
            chunk = reader.read(65536)
            if not chunk: fail("chromium closed the pipe")
            buffered += chunk
        raw, buffered = buffered.split(b"\0", 1)
        reply = json.loads(raw)
        if reply.get("id") == next_id:
            if "error" in reply:
                if tolerate_error: return None
                fail(f"{method}: {reply['error']}")
            return reply.get("result", {})

def evaluate(session, expression):
    # While the sign-in form posts and the status page loads, the page's context comes and
    # goes ("Execution context was destroyed"): that is "not yet", asked again by the caller.
    result = send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session, tolerate_error=True)
    return (result or {}).get("result", {}).get("value")

try:
    # A page of our own: the one Chromium opens at start may not exist yet when it first answers.
    target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    send("Page.enable", {}, session)
    send("Page.navigate", {"url": url}, session)
    deadline = time.time() + 120
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
    deadline = time.time() + 120
    missing = wanted
    while time.time() < deadline and missing:
        missing = [i for i in wanted if not evaluate(session, f"!!document.getElementById('event-{i}')")]
        time.sleep(0.1)
    reloaded = evaluate(session, "performance.getEntriesByType('navigation').length")
    print("FOUND" if not missing else "MISSING " + ",".join(missing), flush=True)
    rows = evaluate(session, "Array.from(document.querySelectorAll('#live tr')).slice(1,4).map(r=>r.textContent).join(' | ')")
    print("ROWS", rows, flush=True)
except SystemExit:
    raise
except BaseException as error:
    # The test reads stdout only: say what went wrong there, not in a traceback nobody sees.
    print("ERROR", repr(error), flush=True)
    raise SystemExit(1)
finally:
    proc.kill()

"""Headless Chromium over the DevTools protocol (--remote-debugging-pipe), for the
picture and status-page tests: start it, open a page, evaluate script in it.
Standard library only. Failures print `ERROR <reason>` on stdout (what the tests
read) and exit 1."""
import json, os, subprocess, sys, time


def fail(reason):
    print("ERROR", reason, flush=True)
    raise SystemExit(1)


class Chromium:
    def __init__(self, executable):
        # Chromium's own messages (a crashed GPU process, say) go where the test can quote them.
        log_path = os.environ.get("LIVE_PAGE_CHROMIUM_LOG")
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        to_chrome_r, self.to_chrome = os.pipe()
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
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-gpu-watchdog", "--remote-debugging-pipe",
             "--hide-scrollbars", "--user-data-dir=" + os.environ.get("LIVE_PAGE_PROFILE", "/tmp/live-page-profile"), "about:blank"],
            preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=log, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.reader = os.fdopen(from_chrome_r, "rb", buffering=0)
        self.buffered = b""
        self.next_id = 0
        # A page of our own: the one Chromium opens at start may not exist yet when it first answers.
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", {}, self.session)

    def send(self, method, params=None, session=None, tolerate_error=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffered:
                chunk = self.reader.read(65536)
                if not chunk:
                    fail("chromium closed the pipe")
                self.buffered += chunk
            raw, self.buffered = self.buffered.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    if tolerate_error:
                        return None
                    fail(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        # While a form posts and the next page loads, the page's context comes and goes
        # ("Execution context was destroyed"): that is "not yet", asked again by the caller.
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session, tolerate_error=True)
        return (result or {}).get("result", {}).get("value")

    def navigate(self, url):
        self.send("Page.navigate", {"url": url}, self.session)

    def wait_for(self, expression, seconds=120):
        """The expression's value once truthy; None if it never is within `seconds` (a bound that only
        keeps a broken page from hanging the test: a working one is done in well under a second)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        return None

    def viewport(self, width, height):
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  self.session)

    def screenshot(self, path, full_page=False):
        import base64
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.send("Page.getLayoutMetrics", {}, self.session)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send("Page.captureScreenshot", params, self.session)
        with open(path, "wb") as out:
            out.write(base64.b64decode(shot["data"]))

    def close(self):
        self.process.kill()


def run(main):
    """Runs `main`, turning any exception into an `ERROR` line on stdout."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as error:
        # The test reads stdout only: say what went wrong there, not in a traceback nobody sees.
        print("ERROR", repr(error), flush=True)
        raise SystemExit(1)

#!/usr/bin/env python3
"""Opens pages of a signed-in agent in headless Chromium (chromium.py) and prints, for
each, what a browser drew: one JSON object a line with the page's title, its first
heading, every SVG text element's bounding box (in CSS pixels, with its class and the
index of the <svg> it belongs to, and that svg's box), the live table's rows and the
<time> elements. The tests find overlap and repeats from these boxes.

usage: page_boxes.py CHROMIUM SIGNIN_URL [--screenshot PATH] URL...
With --screenshot, also saves a full-page 1100-px-wide screenshot of the first URL.
ERROR <reason> when Chromium, the protocol or a page fails."""
import json, sys
from chromium import Chromium, fail, run

executable, signin = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
shot = None
if rest[:1] == ["--screenshot"]:
    shot, rest = rest[1], rest[2:]

MEASURE = r"""(function(){
var svgs=Array.from(document.querySelectorAll('svg'));
function box(e){var r=e.getBoundingClientRect();return {x:r.left,y:r.top,w:r.width,h:r.height};}
return JSON.stringify({
 url: location.href, title: document.title,
 h1: (document.querySelector('h1')||{textContent:''}).textContent,
 svgs: svgs.map(box),
 texts: Array.from(document.querySelectorAll('text')).map(function(t){var b=box(t);
   b.text=t.textContent;b.cls=t.getAttribute('class')||'';b.svg=svgs.indexOf(t.ownerSVGElement);return b;}),
 shapes: Array.from(document.querySelectorAll('.step,.plot')).map(function(e){var b=box(e);b.cls=e.getAttribute('class');return b;}),
 live_rows: Array.from(document.querySelectorAll('#live tr[id^=event-]')).map(function(r){return r.textContent;}),
 times: Array.from(document.querySelectorAll('time')).map(function(t){return [t.textContent,t.getAttribute('title')||''];}),
 images: Array.from(document.images).map(function(i){return [i.getAttribute('src'),i.naturalWidth];})
});})()"""


def main():
    browser = Chromium(executable)
    try:
        browser.viewport(1100, 900)
        browser.navigate(signin)
        if not browser.wait_for("location.pathname==='/'&&document.readyState==='complete'&&!!document.querySelector('h1')"
                                "&&!document.title.includes('sign')"):
            fail("the sign-in did not reach the status page: " + str(browser.evaluate("document.title")))
        for index, url in enumerate(rest):
            browser.navigate(url)
            loaded = f"location.href==={json.dumps(url)}&&document.readyState==='complete'&&Array.from(document.images).every(function(i){{return i.complete;}})"
            if not browser.wait_for(loaded):
                fail("did not load " + url + ": " + str(browser.evaluate("location.href")))
            print(browser.evaluate(MEASURE), flush=True)
            if shot and index == 0:
                browser.screenshot(shot, full_page=True)
    finally:
        browser.close()


run(main)

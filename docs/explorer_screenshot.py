"""Screenshots of the explorer page, taken by headless Chromium at a phone's, a tablet's or a desktop's width.

    python docs/explorer_screenshot.py docs/explorer.html docs/explorer.png                 # as it opens, 1400 px
    python docs/explorer_screenshot.py docs/explorer.html docs/explorer_390.png 390 past    # one step past the limit

A state is "open" (the page as it opens), "past" (one lr past the limit: its guided step 2), or a setting such
as "linear,x,momentum" (at its default lr and last epoch). Needs selenium and Debian's chromium and chromium-driver
(what tests/test_explorer_browser.py drives).
"""
import sys
import time
from pathlib import Path

from browser import chromium

STATES = {"open": "", "past": "document.querySelectorAll('#steps button')[1].click()"}


def screenshot(page, png, width=1400, state="open"):
    driver = chromium(width, 1000)
    try:
        driver.get(Path(page).resolve().as_uri())
        deadline = time.monotonic() + 60
        while not driver.execute_script("return document.getElementById('readout-loss').textContent") \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        script = STATES.get(state, "window.explorer.choose({})".format(", ".join(repr(v) for v in state.split(","))))
        if script:
            driver.execute_script(script)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, height)
        time.sleep(1.5)  # plotly's redraw at the new size
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    screenshot(sys.argv[1], sys.argv[2], *(int(sys.argv[3]), *sys.argv[4:5]) if len(sys.argv) > 3 else ())

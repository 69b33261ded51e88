"""A screenshot of the explorer page, as a reader first sees it, taken by headless Chromium.

    python docs/explorer_screenshot.py docs/explorer.html docs/explorer.png

Needs selenium and Debian's chromium and chromium-driver (what tests/test_explorer.py drives).
"""
import shutil
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WINDOW = (1400, 1320)  # wide enough for the four panels side by side, tall enough for the controls above them


def screenshot(page, png):
    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                     "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(Path(page).resolve().as_uri())
        deadline = time.monotonic() + 60
        while not driver.find_element(By.ID, "readout-loss").text and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # plotly's last redraw after the readout is filled
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    screenshot(sys.argv[1], sys.argv[2])

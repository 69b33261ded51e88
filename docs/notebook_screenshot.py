"""Screenshots of the notebook as a reader sees it once it has run: executed top to bottom in a python3 kernel
(the blog's full settings), rendered to HTML by nbconvert, and taken by headless Chromium at two of its sections:
its opening and the bowl. The controls of part 5 are not drawn: a static page has no kernel to run them.

    python docs/notebook_screenshot.py docs/notebook.png docs/notebook_bowl.png

Needs notebooks/requirements.txt (nbconvert comes with it), selenium, and Debian's chromium and chromium-driver.
"""
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from browser import chromium
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "lesson.ipynb"
WINDOW = (1300, 1500)
SECTIONS = ("Quadratic regression with PyTorch", "3. Why it is slow")  # the heading at the top of each screenshot


def executed_html():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
                   ).execute()
    body, _ = HTMLExporter().from_notebook_node(notebook)
    return body


def screenshot(html, pngs):
    driver = chromium(*WINDOW)
    try:
        driver.get(Path(html).resolve().as_uri())
        time.sleep(1)  # the page's fonts and images
        for heading, png in zip(SECTIONS, pngs):
            driver.execute_script("[...document.querySelectorAll('h1, h2')].find(h => h.textContent.startsWith("
                                  "arguments[0])).scrollIntoView()", heading)
            time.sleep(0.5)
            driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "lesson.html"
        page.write_text(executed_html(), encoding="utf-8")
        screenshot(page, sys.argv[1:3])

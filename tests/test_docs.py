"""The docs: every fast block of program output equals what the program prints now, the README is a
landing page, and the prose is written in sentences a learner reads once."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_sentences(markdown):
    """The sentences of a markdown text: code blocks, cog lines, tables, headings and images left out."""
    kept, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith(("<!--", "|", "#", "![")):
            continue
        kept.append(line)
    text = " ".join(kept)
    text = re.sub(r"`[^`]*`", "CODE", text)          # inline code counts as one word
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link counts as its words
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z*(\"'`\d])|\s\*\s|\s-\s(?=\S)|\s\d+\.\s", text)
    return [s for s in (s.strip() for s in sentences) if len(s.split()) > 1]


def test_the_sentence_splitter_counts_what_a_reader_counts():
    text = "One claim here. Another one, with `code --like this` and [a link](x.md).\n\n```\nnot. prose.\n```\n"
    assert [len(s.split()) for s in prose_sentences(text)] == [3, 7]  # Another one with CODE and a link


def test_sentences_are_short():
    sentences = [s for path in DOCS for s in prose_sentences(path.read_text(encoding="utf-8"))]
    lengths = [len(s.split()) for s in sentences]
    longest = max(zip(lengths, sentences))
    assert sum(lengths) / len(lengths) <= 25, f"average {sum(lengths) / len(lengths):.1f} words"
    assert longest[0] <= 60, longest


def test_readme_is_a_landing_page():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 260


def test_every_local_link_resolves():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)", path.read_text(encoding="utf-8")):
            if not target.startswith(("http://", "https://")):
                assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"


@pytest.mark.xdist_group("docs")
def test_fast_blocks_equal_what_the_program_prints_now():
    """cog --check: every block not marked slow is rerun and compared with the file; `python docs/generate.py`
    regenerates them all."""
    result = subprocess.run([sys.executable, "docs/generate.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

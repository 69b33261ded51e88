"""The docs: every fast block of program output equals what the program prints now, the README is a
landing page, and the prose is written in sentences a learner reads once."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "README.zh-CN.md", *sorted((ROOT / "docs").glob("*.md"))]


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
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z*(\"'`\d])|(?<=[。！？])|(?<=：)\s+|\s\*\s|\s-\s(?=\S)|\s\d+\.\s", text)
    return [s for s in (s.strip() for s in sentences) if words(s) > 1]


CJK = r"[\u4e00-\u9fff]"  # Chinese characters: a sentence of them has no spaces to count words by
CJK_PUNCTUATION = r"[\u3000-\u303f\uff00-\uffef]"  # 。、「」 and the full-width ，：！？（）


def words(sentence):
    """The words a reader counts: each word between spaces, and in Chinese one per two characters (a Chinese word is
    one to three characters, most often two), so one rule on sentence length serves both languages."""
    latin = re.sub(CJK + "|" + CJK_PUNCTUATION, " ", sentence)
    return len(latin.split()) + (len(re.findall(CJK, sentence)) + 1) // 2


def test_the_sentence_splitter_counts_what_a_reader_counts():
    text = "One claim here. Another one, with `code --like this` and [a link](x.md).\n\n```\nnot. prose.\n```\n"
    assert [len(s.split()) for s in prose_sentences(text)] == [3, 7]  # Another one with CODE and a link
    chinese = "第一句话。第二句用 `code` 和 [链接](x.md)！"
    assert [words(s) for s in prose_sentences(chinese)] == [2, 5]  # 第一句话 is 2; CODE, then 第二句用和链接 is 4


def test_sentences_are_short():
    sentences = [s for path in DOCS for s in prose_sentences(path.read_text(encoding="utf-8"))]
    lengths = [words(s) for s in sentences]
    longest = max(zip(lengths, sentences))
    assert sum(lengths) / len(lengths) <= 25, f"average {sum(lengths) / len(lengths):.1f} words"
    assert longest[0] <= 60, longest


def fixed_numbers():
    """Numbers prose may state without a generated block beside them: the code's constants (read from the code, so
    the docs fail when one changes) and facts that cannot go stale."""
    import inspect

    from beyond_the_blog.many_runs import explorer_runs
    from beyond_the_blog.models import MODELS
    from beyond_the_blog.training import judge, monitor
    constants = {
        "20000": MODELS["linear"].defaults["sgd", False][1], "500000": MODELS["params"].defaults["sgd", False][1],
        "0.01": judge.CONVERGED_ATOL, "24": explorer_runs.LEARNING_RATES,
        "90": inspect.signature(monitor.frame_epochs).parameters["frames"].default,
    }
    facts = {
        "144": "12², the square of the range's end", "95": "the level of the confidence intervals",
        "1000": "the 1000-fold reduction the eigenvalue table counts epochs for", "1.9": "1 + β, β = 0.9",
        "0.7155": "the blog's printed w1", "1.4002": "the blog's printed w2", "1.0018": "their product, as printed",
        "3.11": "the Python version", "2021": "a citation's year",
        "1e-7": "float32's rounding, about 2^-24", "1e-16": "float64's rounding, about 2^-53",
    }
    return {number for number, value in constants.items() if float(number) == value} | set(facts)


NUMBER = r"(?<![\w.\-])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.]\w)"  # 12, 0.5, 3e-4; not v1, 2.13.0 or x2


def generated_and_prose(markdown):
    """The text cog generated (program output, tables, figures) and the prose written by hand around it."""
    pieces = re.split(r"(\]\]\] -->.*?<!-- \[\[\[end\]\]\] -->)", markdown, flags=re.S)
    generated = "".join(pieces[1::2])
    hand = re.sub(r"```.*?```", " ", "".join(pieces[0::2]), flags=re.S)
    return generated, hand


def significant_digits(number):
    """The digits a number in prose gives: 3e-4 one, 0.014 two, 1.50 three, 400 one."""
    mantissa = number.split("e")[0]
    digits = mantissa.replace(".", "").lstrip("0")
    return max(1, len(digits) if "." in mantissa else len(digits.rstrip("0")))


def quotes(number, generated_numbers):
    """Whether `number` is one of the generated numbers, rounded to the digits the prose gives."""
    digits = significant_digits(number)
    return any(float(f"{g:.{digits}g}") == float(number) for g in generated_numbers)


def test_the_number_check_rounds_as_a_reader_does():
    assert quotes("3e-4", [0.0003]) and quotes("0.014", [0.01356]) and quotes("400", [417.2])
    assert not quotes("0.0147", [0.01356]) and not quotes("14", [12.6])


def test_prose_quotes_no_number_that_no_command_regenerates():
    fixed = fixed_numbers()
    for path in DOCS:
        if path.name == "speed-tables.md":
            continue  # the benchmark writes this file whole
        generated, hand = generated_and_prose(path.read_text(encoding="utf-8"))
        generated_numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", generated)]  # sizes
        for sentence in prose_sentences(hand):
            for number in re.findall(NUMBER, sentence, flags=re.ASCII):  # a number next to a Chinese character too
                if float(number) <= 10 and "." not in number and "e" not in number:
                    continue  # counts and small integers: "two models", "seed 0"
                assert number in fixed or quotes(number, generated_numbers), (
                    f"{path.name}: {number} is copied by hand: quote a generated block instead ({sentence[:80]})")


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

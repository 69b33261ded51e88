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
    # a sentence may end inside markdown's emphasis ("._") and the next begin with it ("_Measured")
    sentences = re.split(r"(?<=[.!?])_?\s+(?=[A-Z*_(\"'`\d])|(?<=[。！？])|(?<=：)\s+|\s\*\s|\s-\s(?=\S)|\s\d+\.\s",
                         text)
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


def text_blocks(markdown):
    """The program output cog wrote into a page: each fenced text block's lines after its `$ command` line."""
    generated, _ = generated_and_prose(markdown)
    return [block.splitlines()[1:] for block in re.findall(r"```text\n(.*?)```", generated, flags=re.S)]


def cut_sentences(lines):
    """Where a block cuts a sentence the program printed whole: a part that ends inside a clause (on ',' or ';'),
    or a line indented as a wrapped sentence's continuation that does not continue the line above it."""
    sys.path.insert(0, str(ROOT / "docs"))
    from generate import WIDTH, continues

    def indent(text):
        return len(text) - len(text.lstrip())
    cuts = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else "..."
        if line.rstrip().endswith((",", ";")) and nxt.strip() in ("...", ""):
            cuts.append(line)
        above = lines[i - 1] if i else ""
        heading = above.strip() == "" or above.endswith((":", "=="))  # a list under its heading is not a wrap
        looks_continued = (indent(line) == indent(above) + 2 and not heading) or (
            above.strip() == "..." and indent(line) >= 4)
        orphan = line[indent(line):indent(line) + 1].islower() and looks_continued and not (
            len(above) + 1 + len(line.split()[0]) > WIDTH or continues([above], line))
        if orphan:
            cuts.append(line)
    return cuts


def test_the_docs_filter_keeps_the_sentences_the_program_wrapped():
    """generate.logical_lines against the program's own wrapper: every wrapped sentence comes back as one group."""
    sys.path.insert(0, str(ROOT / "docs"))
    from generate import logical_lines

    from beyond_the_blog.report.text import wrapped
    sentences = ["  the slowest direction (mostly c: +0.016, -0.262, +0.965) shrinks by 1 - lr*lambda_min = 0.999987 "
                 "per epoch: 530000 epochs for a 1000-fold error reduction", "  a short line",
                 "            true      fitted   least sq.", "  a            1      0.9883      0.9883",
                 "  float32 stopped it there: the updates lr*dL/d(a, b, c) = (2.6e-08, 4.8e-07, 9.5e-07) are under "
                 "half the float32 gap at a, b and c", "Where the product lands: y = (w1 x + b1)(w2 x + b2) on x"]
    printed = [wrapped(s).splitlines() for s in sentences]
    assert [len(lines) for lines in printed] == [2, 1, 1, 1, 2, 1]  # the test's own premise: two are wrapped
    assert logical_lines([line for lines in printed for line in lines]) == printed
    clause = ["  balance: -0.0136 at the start, -0.0132 at the end;", "  gradient descent (nearly) conserves it"]
    assert logical_lines(clause) == [clause]


def test_no_block_cuts_a_sentence():
    for path in DOCS:
        for lines in text_blocks(path.read_text(encoding="utf-8")):
            assert not cut_sentences(lines), f"{path.name} cuts a sentence the program printed: {cut_sentences(lines)}"


def test_the_cut_check_finds_a_cut():
    # the check's own premise: blocks cut as they once were are caught
    assert cut_sentences(["  the spread matches the standard error: it is the noise in the data,"])
    assert cut_sentences(["  balance: -0.0136 at the start;", "    flat valley of solutions"])
    assert not cut_sentences(["  at a minimum one eigenvalue is ~0: (s w1, s b1, w2/s, b2/s) draws the same curve for "
                              "every s, a", "    flat valley of solutions"])


def test_the_tests_page_names_every_test_file():
    page = (ROOT / "docs" / "tests.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted((ROOT / "tests").glob("test_*.py")) if f"`{p.name}`" not in page]
    assert not missing, f"docs/tests.md does not say what these prove: {missing}"

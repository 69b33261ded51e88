"""Words around numbers, for every printed line: a count with its noun in the right number, a huge count or
ratio as a person writes it, a formula kept whole, and prose wrapped on words without splitting either."""
import math
import re
import textwrap

WIDTH = 100  # a terminal's width: prose wraps on words here; tables and the blog's lines keep theirs
GLUE = "\u00a0"  # a space the wrapping never breaks at (textwrap splits on ASCII whitespace only)


def count(number, noun, plural=None):
    """'1 epoch', '2 epochs', '0 runs', 'about 1.9e18 epochs': `number` (or its text) and its noun in the right
    number (plural: an irregular plural)."""
    text = f"{number}"
    return f"{text} {noun if text == '1' else plural or noun + 's'}"


def subject(names, singular, plural):
    """'b no longer moves', 'a, b no longer move': the names as a list, and the verb that agrees with it."""
    return f"{', '.join(names)} {singular if len(names) == 1 else plural}"


def approx(value, digits=3):
    """A positive count or ratio as a person writes it: '23.3', '149', '518000', 'about 1.9e18'.
    Up to a million in ordinary digits (`digits` significant ones), from there a power of ten."""
    if not math.isfinite(value):
        return "infinitely many"
    if value < 1e6:
        rounded = float(f"{value:.{digits}g}")
        return f"{rounded:.0f}" if rounded >= 10 ** (digits - 1) else f"{rounded:g}"
    mantissa, exponent = f"{value:.2g}".split("e")
    return f"about {mantissa}e{int(exponent)}"


def times(ratio):
    """A ratio above 1 as a multiple: '1.5 times', '68 times', '1442 times', 'about 1e13 times'."""
    if ratio >= 1e6:
        return f"{approx(ratio)} times"
    return f"{ratio:.0f} times" if ratio >= 9.5 else f"{ratio:.2g} times"


def formula(text):
    """`text` as one unbreakable unit: the wrapping below moves it whole to the next line."""
    return text.replace(" ", GLUE)


UNITS = ("s", "ms", "MB", "GB", "%", "epochs", "epoch", "times")  # a number before one stays on its line
OPERATOR = r"[=+\-/*^<>]+"


def glued(line):
    """`line` with the spaces a wrap must not use made unbreakable: around a lone operator (=, -, /, ...), and
    between a number and its unit."""
    line = re.sub(rf"(?<=\S) ({OPERATOR}) (?=\S)", lambda m: f"{GLUE}{m[1]}{GLUE}", line)
    units = "|".join(re.escape(u) for u in UNITS)
    return re.sub(rf"(\d) ((?:{units})(?![\w]))", rf"\1{GLUE}\2", line)


def wrapped(line):
    """A line of prose wrapped on words at WIDTH, never inside a formula nor between a number and its unit;
    its continuation lines indented two more spaces."""
    indent = line[:len(line) - len(line.lstrip())]
    text = textwrap.fill(glued(line), WIDTH, subsequent_indent=indent + "  ", break_long_words=False,
                         break_on_hyphens=False)
    return text.replace(GLUE, " ")

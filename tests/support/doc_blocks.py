"""The fenced blocks of the docs, with the `<!-- docs-test: ... -->` annotations that say how to run them.

A page's annotations (anywhere on it): ``setup=NAME`` names the state the page starts from (a function in
``doc_setups``; the page's text must say which state that is). A block's annotations (in the comment lines
right before its fence): ``skip because REASON``; ``fails because REASON`` (a reported bug: the block must
fail until it is fixed, and the rest of the page still runs); ``typed TEXT`` (what a person types at each
prompt: the commands get a terminal); ``env NAME=VALUE`` (a variable the reader is told to have set);
``let TEXT=$(...)`` (TEXT in the block, such as an elided id ``0c0d…e1``, stands for what the command prints).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = {"sh", "bash", "shell", "console"}
RUN = SHELL | {"python", "yaml"}  # the languages a page's test runs (yaml: validated as matchday.yaml)
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
ANNOTATION = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<text>.*?)\s*-->\s*$")
BLOCK_KEYS = ("skip", "fails", "typed", "env", "let")
PAGE_KEYS = ("setup",)


def pages() -> list[Path]:
    """README.md, CONTRIBUTING.md (when there is one) and docs/*.md, relative to the repository."""
    found = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [p.relative_to(ROOT) for p in found if p.exists()]


@dataclass(frozen=True)
class Annotation:
    key: str
    value: str
    line: int


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # the opening fence's, 1-based
    lang: str
    lines: tuple[str, ...]  # the body, without the fence's indentation
    annotations: tuple[Annotation, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def annotation(self, key: str) -> Annotation | None:
        return next((a for a in self.annotations if a.key == key), None)

    def reason(self, key: str) -> str | None:
        found = self.annotation(key)
        return found.value.removeprefix("because").strip() if found else None

    @property
    def skip_reason(self) -> str | None:
        return self.reason("skip")


@dataclass(frozen=True)
class Page:
    path: Path
    blocks: tuple[Block, ...]
    setup: str | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def runnable(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.lang in RUN)


def parse_annotation(text: str, line: int) -> Annotation:
    key, _, value = text.partition("=") if text.startswith("setup=") else text.partition(" ")
    return Annotation(key.strip(), value.strip(), line)


def read_page(path: Path) -> Page:
    return parse_page(path, (ROOT / path).read_text())


def parse_page(path: Path, text: str) -> Page:
    """The page's fenced blocks, each with the annotations right before it, and the page's own."""
    lines = text.split("\n")
    blocks: list[Block] = []
    pending: list[Annotation] = []
    page_setup: str | None = None
    problems: list[str] = []
    i = 0
    while i < len(lines):
        note = ANNOTATION.match(lines[i])
        fence = FENCE.match(lines[i])
        if note:
            annotation = parse_annotation(note["text"], i + 1)
            if annotation.key in PAGE_KEYS:
                page_setup = annotation.value
            elif annotation.key in BLOCK_KEYS:
                pending.append(annotation)
            else:
                problems.append(f"{path}:{i + 1}: unknown docs-test annotation {note['text']!r}")
        elif fence:
            indent, end = len(fence["indent"]), i + 1
            while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
                end += 1
            body = tuple(line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1 : end])
            blocks.append(Block(path, i + 1, fence["lang"], body, tuple(pending)))
            pending, i = [], end
        elif lines[i].strip() and pending:
            problems.append(f"{path}:{pending[0].line}: a block annotation must come right before a block")
            pending = []
        i += 1
    return Page(path, tuple(blocks), page_setup, tuple(problems))


@dataclass(frozen=True)
class Command:
    """One command of a shell block, with the output the page shows under it."""

    text: str  # continuation lines joined by backslash-newline, as bash reads them
    line: int  # in the page
    shown: tuple[str, ...] = ()

    @property
    def flat(self) -> str:
        """The command on one line, its trailing comment dropped."""
        return re.sub(r"\s+#[^'\"]*$", "", self.text.replace("\\\n", " "))

    @property
    def background(self) -> bool:
        return bool(re.search(r"(?<!&)&\s*$", self.flat))

    @property
    def words(self) -> list[str]:
        """The command's words after leading VAR=value assignments (empty if the shell would not split it)."""
        try:
            words = shlex.split(self.flat.rstrip().rstrip("&"), comments=True)
        except ValueError:
            return []
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        return words

    @property
    def assignments(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for word in shlex.split(self.flat, comments=True):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
                break
            name, _, value = word.partition("=")
            out[name] = value
        return out

    @property
    def subcommand(self) -> str | None:
        """``serve`` for `matchday serve ...` (or `.venv/bin/matchday serve`), None for anything but matchday."""
        words = self.words
        return words[1] if len(words) >= 2 and Path(words[0]).name == "matchday" else None

    @property
    def is_serve(self) -> bool:
        return self.subcommand == "serve"

    @property
    def is_worker(self) -> bool:
        return self.subcommand == "worker"

    @property
    def shows_error(self) -> bool:
        return bool(self.shown) and self.shown[0].lstrip().startswith("error:")


def commands(block: Block) -> list[Command]:
    """A console block's ``$ `` lines (with their continuations and the output shown under them); a sh
    block's every line that is not a comment."""
    console = block.lang == "console"
    out: list[Command] = []
    lines = list(block.lines)
    i = 0
    while i < len(lines):
        raw = lines[i]
        starts = raw.lstrip().startswith("$ ") if console else bool(raw.strip()) and not raw.lstrip().startswith("#")
        if not starts:
            if out and console:
                out[-1] = Command(out[-1].text, out[-1].line, (*out[-1].shown, raw))
            i += 1
            continue
        text, first = (raw.lstrip()[2:] if console else raw), i
        while i + 1 < len(lines) and (text.rstrip().endswith("\\") or not quotes_closed(text)):
            i += 1
            text = (text.rstrip()[:-1].rstrip() + " \\") if text.rstrip().endswith("\\") else text
            text += "\n" + lines[i]
        out.append(Command(text, block.line + 1 + first))
        i += 1
    return out


def quotes_closed(text: str) -> bool:
    """Whether the shell would end the command here (a quote opened on this line runs on to the next)."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True

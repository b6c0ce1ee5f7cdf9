"""The documentation stays true: links resolve, the commands it shows exist, the README stays short.

Checks README.md, docs/*.md, bench/README.md and airflow_dags/README.md:

1. every relative Markdown link points to a file that exists, and an ``#anchor`` into a Markdown
   file names one of its headings (GitHub's slug rule);
2. every ``graphlake <verb> [<subverb>]`` shown in code (fenced blocks and inline code) is a
   command of the real CLI parser;
3. every ``make <target>`` shown in code is a target of the Makefile;
4. README.md is at most 12,000 characters.

No Spark, no subprocess: the parser is built in-process.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT = 12_000


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md",
             ROOT / "airflow_dags" / "README.md"]
    return [f for f in files if f.exists()]


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:  # a file outside the repository (the self-checks' pages)
        return str(path)


# ------------------------------------------------------------------------------ Markdown parsing

FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def split_code(text: str) -> tuple[str, list[str]]:
    """(the text with code removed, the code: fenced blocks and inline spans)."""
    code: list[str] = []

    def fenced(m):
        # comments in code blocks are prose (`# pass both to any graphlake command`)
        code.append(re.sub(r"(?m)(^|[ \t])#.*$", r"\1", m.group(2)))
        return "\n" * m.group(0).count("\n")

    prose = FENCE.sub(fenced, text)

    def inline(m):
        code.append(m.group(2))
        return " "

    prose = INLINE_CODE.sub(inline, prose)
    return prose, code


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (hyphens and spaces kept), spaces -> hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading counts by its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(text):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slug_rule():
    assert slug("Exit codes (the contract with schedulers)") == "exit-codes-the-contract-with-schedulers"
    assert slug("Pinned versions (`constraints.txt`)") == "pinned-versions-constraintstxt"
    assert slug("The graph build's rules") == "the-graph-builds-rules"
    assert slug("Cold start: `graphlake embed-new`") == "cold-start-graphlake-embed-new"


# ------------------------------------------------------------------------------ 1. links


def relative_links(path: Path) -> list[str]:
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(prose) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def link_problems(path: Path) -> list[str]:
    problems = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{rel(path)}: link ({target}) points to a missing file {dest}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{rel(path)}: link ({target}): {dest.name} has no heading with anchor #{anchor}")
    return problems


def test_doc_files_found():
    names = {rel(f) for f in doc_files()}
    assert "README.md" in names and "bench/README.md" in names, f"documentation files not found: {sorted(names)}"
    assert any(n.startswith("docs/") for n in names), f"no docs/*.md found: {sorted(names)}"


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_relative_links_resolve(path):
    problems = link_problems(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_link_check_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n", encoding="utf-8")
    page.write_text("# Page\n\n[ok](other.md#a-section) [self](#page) `[code](missing.md)`\n"
                    "[gone](missing.md) [bad anchor](other.md#no-such-section)\n", encoding="utf-8")
    problems = link_problems(page)
    text = "\n".join(problems)
    assert len(problems) == 2, f"expected the missing file and the missing anchor, got: {text}"
    assert "(missing.md)" in problems[0] and "#no-such-section" in problems[1], text


# ------------------------------------------------------------------------------ 2. CLI commands


def cli_parser() -> argparse.ArgumentParser:
    from graphlake.app.cli import build_parser

    return build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# `graphlake` as a command word: not part of a path, module or file name (graphlake/…, graphlake.app, graphlake_daily)
COMMAND = re.compile(r"(?<![\w./$~-])graphlake[ \t]+([a-z][\w|\\-]*)(?:[ \t]+([a-z][\w|\\-]*))?")


def shown_commands(path: Path) -> list[tuple[str, str | None]]:
    _, code = split_code(path.read_text(encoding="utf-8"))
    out = []
    for block in code:
        for m in COMMAND.finditer(block):
            out.append((m.group(1), m.group(2)))
    return out


def command_problems(path: Path, verbs: dict[str, argparse.ArgumentParser]) -> list[str]:
    problems = []
    for verb_text, sub_text in shown_commands(path):
        for verb in filter(None, verb_text.replace("\\", "").split("|")):
            if verb not in verbs:
                problems.append(f"{rel(path)}: `graphlake {verb_text}`: no CLI command {verb!r} "
                                f"(commands: {', '.join(sorted(verbs))})")
                continue
            subs = subcommands(verbs[verb])
            if not subs or sub_text is None:
                continue
            for sub in filter(None, sub_text.replace("\\", "").split("|")):
                if sub not in subs:
                    problems.append(f"{rel(path)}: `graphlake {verb} {sub_text}`: {verb!r} has no sub-command "
                                    f"{sub!r} (sub-commands: {', '.join(sorted(subs))})")
    return problems


@pytest.fixture(scope="module")
def verbs():
    return subcommands(cli_parser())


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_cli_commands_exist(path, verbs):
    problems = command_problems(path, verbs)
    assert not problems, "commands that the CLI does not have:\n" + "\n".join(problems)


def test_cli_check_catches_a_wrong_command(tmp_path, verbs):
    assert {"train", "graph", "assets", "lake", "sql"} <= set(verbs), f"unexpected CLI commands: {sorted(verbs)}"
    page = tmp_path / "page.md"
    page.write_text("`graphlake graph stats` `graphlake assets list|show` `graphlake/app/cli.py`\n"
                    "```bash\ngraphlake trian --lake L\ngraphlake assets promot --lake L\n```\n", encoding="utf-8")
    problems = "\n".join(command_problems(page, verbs))
    assert "'trian'" in problems and "'promot'" in problems, problems
    assert "stats" not in problems and "'list'" not in problems and "cli.py" not in problems, problems


def test_docs_show_commands():
    shown = [c for f in doc_files() for c in shown_commands(f)]
    assert ("graph", "build") in shown and any(v == "assets" for v, _ in shown), \
        f"the command scan found too little in the docs: {shown[:20]}"


# ------------------------------------------------------------------------------ 3. make targets

MAKE = re.compile(r"(?<![\w./-])make[ \t]+([a-z][\w-]*)")


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.-]*)[ \t]*:(?!=)", text, re.M)}


def make_problems(path: Path, targets: set[str]) -> list[str]:
    _, code = split_code(path.read_text(encoding="utf-8"))
    return [f"{rel(path)}: `make {t}`: the Makefile has no target {t!r} (targets: {', '.join(sorted(targets))})"
            for block in code for t in MAKE.findall(block) if t not in targets]


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_make_targets_exist(path):
    problems = make_problems(path, makefile_targets())
    assert not problems, "make targets that do not exist:\n" + "\n".join(problems)


def test_make_check_catches_a_missing_target(tmp_path):
    targets = makefile_targets()
    assert {"demo", "test"} <= targets, f"the Makefile lost its set-up targets: {sorted(targets)}"
    page = tmp_path / "page.md"
    page.write_text("`make demo` and `DEMO_EVENTS=1 make test`; `make deploy`\n", encoding="utf-8")
    problems = make_problems(page, targets)
    assert len(problems) == 1 and "'deploy'" in problems[0], problems


# ------------------------------------------------------------------------------ 4. README size


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert n <= README_LIMIT, f"README.md is {n:,} characters; keep it at most {README_LIMIT:,} (move detail to docs/)"


def test_readme_keeps_the_two_setup_commands():
    _, code = split_code((ROOT / "README.md").read_text(encoding="utf-8"))
    shown = {t for block in code for t in MAKE.findall(block)}
    assert {"demo", "test"} <= shown, f"README.md must show `make demo` and `make test`; it shows {sorted(shown)}"

#!/usr/bin/env python3
"""Check the repository's references to its own documentation.

Three kinds of reference are checked, in every tracked text file (third_party/ is skipped,
except third_party/*/FACELENS-PATCH.md, since vendored code points at its upstream's docs):

1. Markdown links in .md files, `[text](target)` and `[text](target#anchor)`, whose target is
   not a URL: the target must exist relative to the linking file, and an anchor must match a
   heading of the target (GitHub's slugs: lower case, punctuation dropped, spaces to dashes).
2. Plain mentions of a docs path, `docs/<page>.md` (the project's usual way of pointing at a page
   from code comments, scripts and other pages): the file must exist from the repository root.
3. A docs path followed by a quoted section name, `docs/<page>.md, "Section"` or
   `docs/<page>.md "Section"`: some heading of that page, or a paragraph label (a line that
   starts with the words, as in `Sizing: ...` or `**Sizing.**`), must start with them.

In a vendored package (third_party/NAME/), plain docs paths are read from that package's root.

Prints one line per broken reference and exits 1 if there is any, 0 otherwise. Standard library
only; run from anywhere: `python3 scripts/check_doc_links.py`.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT_EXT = {".md", ".rs", ".py", ".sh", ".toml", ".json", ".yml", ".yaml", ".txt"}
MD_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
DOC_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)\b")
DOC_SECTION = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(?:,|'s)? \"([^\"\n]+)\"")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in out.stdout.decode().split("\0"):
        if not name:
            continue
        path = Path(name)
        if path.parts and path.parts[0] == "third_party" and path.name != "FACELENS-PATCH.md":
            continue
        if path.suffix in TEXT_EXT or path.name in ("README", "Dockerfile"):
            yield path


def headings(path, cache={}):
    if path not in cache:
        titles = []
        in_code = False
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lstrip().startswith("```"):
                in_code = not in_code
                continue
            m = HEADING.match(line)
            if m and not in_code:
                titles.append(m.group(1))
        cache[path] = titles
    return cache[path]


def section_starts(path):
    """Headings and paragraph starts of a page, lower case, markup stripped."""
    lines = [h for h in headings(path)]
    lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [norm(re.sub(r"^[#*\s-]+|[`*]", "", line)) for line in lines]


def slug(title):
    title = re.sub(r"[`*_]", "", title.strip().lower())
    title = re.sub(r"[^\w\- ]", "", title)
    return title.replace(" ", "-")


def slugs(path):
    seen = {}
    result = set()
    for title in headings(path):
        s = slug(title)
        n = seen.get(s, 0)
        seen[s] = n + 1
        result.add(s if n == 0 else f"{s}-{n}")
    return result


def norm(text):
    return re.sub(r"\s+", " ", text.strip().lower())


def main():
    problems = []
    for rel in tracked_files():
        path = ROOT / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        base = ROOT / rel.parts[0] / rel.parts[1] if rel.parts[0] == "third_party" else ROOT
        for lineno, line in enumerate(text.splitlines(), 1):
            if rel.suffix == ".md":
                for target in MD_LINK.findall(line):
                    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                        continue
                    file_part, _, anchor = target.partition("#")
                    dest = path if not file_part else (path.parent / file_part).resolve()
                    if not dest.exists():
                        problems.append(f"{rel}:{lineno}: link to missing {target}")
                        continue
                    if anchor and dest.suffix == ".md" and anchor not in slugs(dest):
                        problems.append(f"{rel}:{lineno}: no heading for anchor #{anchor} in {file_part or rel}")
            for doc in DOC_PATH.findall(line):
                if not (base / doc).exists():
                    problems.append(f"{rel}:{lineno}: mentions missing {doc}")
        # Join wrapped lines (and comment markers) so a quoted section split across lines is seen.
        flat = re.sub(r"\s*\n\s*(?:(?://[!/]?|#)\s*)?", " ", text)
        for doc, section in DOC_SECTION.findall(flat):
            target = base / doc
            if not target.exists():
                continue
            want = norm(section)
            if not any(s.startswith(want) for s in section_starts(target)):
                problems.append(f'{rel}: {doc} has no section starting "{section}"')
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} broken documentation reference(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

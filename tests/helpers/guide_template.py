"""The structure of the Product Operation Guide template: its headings, table header rows and bold labels.

``tests/data/guide-template-structure.txt`` keeps a copy of the structure of
``shared/spec/operation-guide-template.md`` (beside the checkout), so the export's tests do not need the
template; a test compares the copy with the template whenever it is there.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT.parent / "shared" / "spec" / "operation-guide-template.md"
COPY = ROOT / "tests" / "data" / "guide-template-structure.txt"


def structure(markdown: str) -> list[str]:
    """Headings (``#``...), the header row of each table and bold labels (``**Startup Sequence:**``), in order;
    nothing inside fenced code blocks."""
    out: list[str] = []
    fenced = in_table = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("|"):
            if not in_table:
                out.append(line.rstrip())
            in_table = True
            continue
        in_table = False
        if line.startswith("#"):
            out.append(line.rstrip())
        elif line.startswith("**") and ":**" in line:
            out.append(line[: line.index(":**") + 3])
    return out


if __name__ == "__main__":  # python -m tests.helpers.guide_template: refresh the copy from the template
    COPY.write_text("\n".join(structure(TEMPLATE.read_text())) + "\n")

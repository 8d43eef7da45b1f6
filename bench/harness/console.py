"""Progress lines and Markdown tables of the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence


def say(message: str) -> None:
    """Print one progress line at once (not buffered, so a long run shows where it is).

    Args:
        message (str): the line, without a trailing newline.
    """
    print(message, flush=True)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, align: str | None = None) -> str:
    """A Markdown table.

    Args:
        headers (Sequence[str]): column headings.
        rows (Sequence[Sequence[object]]): cells, turned into text with ``str``; ``|`` is escaped.
        align (str | None): one letter per column, ``l`` (left), ``r`` (right) or ``c`` (centre);
            the first column left and the others right when omitted.

    Returns:
        str: the table, lines joined by ``\\n``, no trailing newline.

    Raises:
        ValueError: ``align`` or a row does not have one entry per column.
    """
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError("align needs one letter per column")
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} does not have {len(headers)} cells")
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)

"""Exports as CSV (RFC 4180, UTF-8), written row by row as the rows arrive.

Times are ISO 8601 with their UTC offset (on the unit's clock; the audit trail's in UTC),
vocabulary answers by their value, true/false for yes/no, empty for nothing recorded. A text
cell starting with =, +, -, @, a tab or a carriage return is prefixed with an apostrophe, so a
spreadsheet opening the file shows it as text instead of running it as a formula (OWASP, "CSV
injection"); numbers are never altered.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset("".join(FORMULA_STARTS))
ROWS_PER_CHUNK = 500


def cell(value: Any) -> Any:
    """One value as the csv module should write it: text, or a number or nothing, which it
    writes itself (floats as repr, the shortest exact form; None as an empty cell). Checked
    by exact type first: an export calls this tens of millions of times."""
    kind = type(value)
    if kind is str:
        return "'" + value if value and value[0] in _FORMULA_FIRST else value
    if value is None or kind is float or kind is int:
        return value
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_chunks(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """The header, then the rows, as UTF-8 bytes a few hundred rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for number, row in enumerate(rows, start=1):
        writer.writerow([cell(row[name]) for name in columns])
        if number % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


# --- XLSX ---------------------------------------------------------------------------------------

SHEET_TITLES = {
    "checks": "Checks",
    "amendments": "Corrections",
    "not_done": "Checks not done",
    "escalations": "Escalations",
    "audit": "Audit trail",
}


def xlsx_value(value: Any) -> Any:
    """Numbers and yes/no as themselves; times as ISO 8601 text (a spreadsheet's dates carry
    no UTC offset); everything else as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def write_workbook(
    target: Any, sheets: Iterable[tuple[str, Sequence[str], Iterable[Mapping[str, Any]]]]
) -> None:
    """A workbook with one sheet per export, written row by row (openpyxl's write-only mode
    keeps no sheet in memory). Text goes in as text cells, never as formulas."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    for kind, columns, rows in sheets:
        sheet = workbook.create_sheet(SHEET_TITLES[kind])
        sheet.append(list(columns))
        for row in rows:
            cells = []
            for name in columns:
                value = xlsx_value(row[name])
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # "=SUM(…)" typed in a note stays text
                cells.append(cell)
            sheet.append(cells)
    workbook.save(target)

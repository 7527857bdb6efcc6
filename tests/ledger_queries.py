"""The example queries of docs/ledger.md, read from the document itself.

Each query is a fenced `sql` block whose first line is `-- name: NAME`. A block for one
database only has `-- dialect: postgresql` or `-- dialect: sqlite` on its second line, and a
query written for one dialect must be written for the other one too. The tests and the ledger
benchmark run the queries exactly as the document shows them.
"""

from __future__ import annotations

import re
from pathlib import Path

LEDGER_DOC = Path(__file__).resolve().parents[1] / "docs" / "ledger.md"
DIALECTS = ("postgresql", "sqlite")
# The key of a block without a dialect line, which runs on every dialect.
PORTABLE = "portable"

SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.DOTALL | re.MULTILINE)
NAME_LINE = re.compile(r"-- name: (\S+)")
DIALECT_LINE = re.compile(r"-- dialect: (\S+)")


class QueryDocError(ValueError):
    """A SQL block of the document breaks the rules in this module's docstring."""


def read_queries(path: Path = LEDGER_DOC) -> dict[str, dict[str, str]]:
    """Return each query's SQL by name, then by dialect (or PORTABLE), in document order."""
    queries: dict[str, dict[str, str]] = {}
    for block in SQL_BLOCK.findall(path.read_text()):
        lines = block.splitlines()
        name = NAME_LINE.fullmatch(lines[0].strip()) if lines else None
        if name is None:
            raise QueryDocError(f"a SQL block in {path} does not start with `-- name: NAME`")
        dialect = DIALECT_LINE.fullmatch(lines[1].strip()) if len(lines) > 1 else None
        key = dialect.group(1) if dialect else PORTABLE
        if key not in (*DIALECTS, PORTABLE):
            raise QueryDocError(f"query {name.group(1)} in {path} has the unknown dialect {key}")
        versions = queries.setdefault(name.group(1), {})
        if key in versions:
            raise QueryDocError(f"query {name.group(1)} in {path} has two {key} versions")
        versions[key] = block
    for name, versions in queries.items():
        if set(versions) not in ({PORTABLE}, set(DIALECTS)):
            raise QueryDocError(
                f"query {name} in {path} must have one portable version or one for each of "
                f"{', '.join(DIALECTS)}; it has {', '.join(sorted(versions))}"
            )
    return queries


def query_sql(queries: dict[str, dict[str, str]], name: str, dialect: str) -> str:
    """Return the SQL of query `name` for `dialect`, which is a SQLAlchemy dialect name."""
    versions = queries[name]
    return versions.get(dialect) or versions[PORTABLE]

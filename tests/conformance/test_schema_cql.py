"""Our schema file has every column Sunbird's own CQL fixtures define, with the same types."""

from __future__ import annotations

import re

from lernflow.config import CassandraSettings
from lernflow.ops.schema import _CREATE_TABLE, _columns, cql_statements
from tests.conformance.conftest import SUNBIRD_FIXTURES

_SUNBIRD_TABLE = re.compile(
    r"CREATE TABLE\s+(?:IF NOT EXISTS\s+)?(sunbird_courses|sunbird|hierarchy_store)\.(\w+)\s*\((.*?)\)\s*(?:WITH|;)",
    re.IGNORECASE | re.DOTALL,
)


def _norm(t: str) -> str:
    return re.sub(r"\s+", "", t.lower())


def _ours() -> dict[tuple[str, str], dict[str, str]]:
    tables = {}
    for stmt in cql_statements(CassandraSettings()):
        m = _CREATE_TABLE.match(stmt)
        if m:
            ks, table, body = m.groups()
            tables[(ks, table)] = {k: _norm(v) for k, v in _columns(body).items()}
    return tables


def test_every_fixture_column_is_in_our_schema_with_the_same_type():
    ours = _ours()
    checked = 0
    for cql in sorted(SUNBIRD_FIXTURES.glob("*/*.cql")):
        text = re.sub(r"/\*.*?\*/", "", cql.read_text(), flags=re.DOTALL)
        for ks, table, body in _SUNBIRD_TABLE.findall(text):
            assert (ks, table) in ours, f"{ks}.{table} from {cql.name} missing"
            for col, ctype in _columns(body).items():
                ctype = _norm(ctype)
                assert col in ours[(ks, table)], f"{ks}.{table}.{col} ({cql.name})"
                assert ours[(ks, table)][col] == ctype, f"{ks}.{table}.{col}: {ctype}"
                checked += 1
    assert checked > 150

"""Customer search: the customers whose name, phone, e-mail or code contain what was typed.

A phone matches on its digits whatever separators either side typed (``138-0013-8000`` finds
``13800138000`` and the other way round). Letters match without regard to case.

Queries of three characters or more are served by a trigram index, so searching a million
customers reads only the rows that hold the text (bench/lists.py):

* **PostgreSQL**: the ``pg_trgm`` extension and one GIN index (:data:`PG_INDEX`) over name,
  e-mail, code and the phone's digits; the query is ``ILIKE '%q%'``, which the index serves.
* **SQLite**: an FTS5 table with the ``trigram`` tokenizer (:data:`FTS_TABLE`, SQLite ≥ 3.34)
  that triggers on ``customer`` keep in step; the query is ``id IN (SELECT rowid FROM … MATCH)``.

One or two characters (a surname, a two-character name, a short code) have no trigram to look
up: they are matched by reading the company's names and codes, which is quick for the small
and medium companies Guanxi mostly serves and for common fragments at any size (the list stops
at its first page), and slow only for a rare two-character fragment in a very large company —
see docs/benchmarks.md. The index is created by migration ``core_0008`` through
:func:`install`; :func:`is_index_object` keeps schema comparisons from reporting it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, column, literal_column, or_, text
from sqlalchemy.engine import Connection

#: Characters people type inside phone numbers; a phone's digits are the phone without them.
PHONE_SEPARATORS = " -()+./"
#: Queries at least this long (in characters) use the trigram index.
TRIGRAM_MIN = 3
#: The SQLite full-text table of customer search terms (rowid = customer id).
FTS_TABLE = "customer_search"
#: The PostgreSQL GIN index on ``customer``.
PG_INDEX = "ix_customer_search_trgm"
_TRIGGERS = ("customer_search_ai", "customer_search_ad", "customer_search_au")


def phone_digits(value: str) -> str:
    """``"138-0013-8000"`` → ``"13800138000"``: the separators people type dropped."""
    return "".join(ch for ch in value if ch not in PHONE_SEPARATORS)


def phone_digits_sql(column: str) -> str:
    """SQL for the digits of phone column ``column`` (the same text in index and query, so
    PostgreSQL recognises the indexed expression)."""
    expr = f"coalesce({column}, '')"
    for ch in PHONE_SEPARATORS:
        expr = f"replace({expr}, '{ch}', '')"
    return expr


def _dialect() -> str:
    from core.db import db

    return db.session.get_bind().dialect.name


def _digits_query(q: str) -> str | None:
    """The digits to look for in phones, or None when ``q`` is not a phone fragment."""
    digits = phone_digits(q)
    if len(digits) >= TRIGRAM_MIN and digits.isascii() and digits.isdigit():
        return digits
    return None


def _fts_phrase(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def customer_clause(q: str) -> Any:
    """A WHERE clause on ``customer``: the customers matching search text ``q``."""
    from core.models import Customer

    digits = _digits_query(q)
    dialect = _dialect()
    if len(q) >= TRIGRAM_MIN and dialect == "sqlite":
        match = _fts_phrase(q)
        if digits and digits != q:
            match += " OR phone : " + _fts_phrase(digits)
        hits = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match").bindparams(
            match=match
        )
        return Customer.id.in_(hits.columns(column("rowid", Integer)))
    if dialect == "postgresql":

        def contains(column: Any, value: str) -> Any:
            return column.icontains(value, autoescape=True)
    else:

        def contains(column: Any, value: str) -> Any:
            return column.contains(value, autoescape=True)  # SQLite's LIKE ignores ASCII case

    clauses = [contains(Customer.name, q), contains(Customer.email, q), contains(Customer.code, q)]
    if digits:
        phone = literal_column(phone_digits_sql("customer.phone"), String)
        clauses.append(contains(phone, digits))
    return or_(*clauses)


# -- the index ---------------------------------------------------------------------------------


def _terms(row: str) -> str:
    """The indexed values of customer ``row`` (a table name or ``new``), in FTS column order."""
    return f"{row}.name, {phone_digits_sql(row + '.phone')}, {row}.email, {row}.code"


def install(conn: Connection) -> None:
    """Create the search index of ``conn``'s database and fill it from the customers."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON customer USING gin ("
                "name gin_trgm_ops, email gin_trgm_ops, code gin_trgm_ops, "
                f"({phone_digits_sql('phone')}) gin_trgm_ops)"
            )
        )
        return
    if conn.dialect.name != "sqlite":
        return
    conn.execute(
        text(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
            "name, phone, email, code, tokenize = 'trigram')"
        )
    )
    columns = f"INSERT INTO {FTS_TABLE} (rowid, name, phone, email, code)"
    conn.execute(text(f"{columns} SELECT customer.id, {_terms('customer')} FROM customer"))
    insert = f"{columns} VALUES (new.id, {_terms('new')});"
    delete = f"DELETE FROM {FTS_TABLE} WHERE rowid = old.id;"
    for ddl in (
        f"CREATE TRIGGER customer_search_ai AFTER INSERT ON customer BEGIN {insert} END",
        f"CREATE TRIGGER customer_search_ad AFTER DELETE ON customer BEGIN {delete} END",
        "CREATE TRIGGER customer_search_au AFTER UPDATE OF name, phone, email, code ON customer "
        f"BEGIN {delete} {insert} END",
    ):
        conn.execute(text(ddl))


def uninstall(conn: Connection) -> None:
    """Drop the search index (the migration's downgrade)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"DROP INDEX IF EXISTS {PG_INDEX}"))
        return
    if conn.dialect.name != "sqlite":
        return
    for trigger in _TRIGGERS:
        conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
    conn.execute(text(f"DROP TABLE IF EXISTS {FTS_TABLE}"))


def is_index_object(name: str | None, type_: str) -> bool:
    """Whether schema object ``name`` belongs to the search index (not in the models)."""
    if not name:
        return False
    if type_ == "table":
        return name == FTS_TABLE or name.startswith(FTS_TABLE + "_")
    return type_ == "index" and name == PG_INDEX

"""Customer search: the customers whose name, phone, e-mail or code contain what was typed.

A phone matches on its digits whatever separators either side typed (``138-0013-8000`` finds
``13800138000`` and the other way round). Letters match without regard to case.

Queries of three characters or more are served by a trigram index, so searching a million
customers reads only the rows that hold the text (bench/lists.py):

* **PostgreSQL**: the ``pg_trgm`` extension and one GIN index (:data:`PG_INDEX`) over name,
  e-mail, code and the phone's digits; the query is ``ILIKE '%q%'``, which the index serves.
* **SQLite**: an FTS5 table with the ``trigram`` tokenizer (:data:`FTS_TABLE`, SQLite ≥ 3.34)
  that triggers on ``customer`` keep in step; the query is ``id IN (SELECT rowid FROM … MATCH)``.

One or two characters (a surname, a two-character name, 协和 in 北京协和医院) have no trigram:
they search names only, through the name's *grams* — its first character (a surname search)
and every pair of neighbouring characters among its first :data:`GRAM_SPAN`:

* **PostgreSQL**: a GIN index on ``guanxi_name_grams(name)`` (an immutable SQL function
  returning the grams as an array); the query is ``guanxi_name_grams(name) @> ARRAY[gram]``.
* **SQLite**: the FTS table's ``grams`` column holds each gram followed by :data:`GRAM_END`
  (``协和\x1f``), so a two-character gram is a three-character phrase the trigram tokenizer
  can look up.

So 张 finds the customers whose name starts with 张, 小明 finds 王小明, and 协和 finds
北京协和医院. Codes, e-mails and phones need three characters. The index is created by
migration ``core_0008`` through :func:`install`; :func:`is_index_object` keeps schema
comparisons from reporting it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, Text, cast, column, false, func, literal_column, or_, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

#: Characters people type inside phone numbers; a phone's digits are the phone without them.
PHONE_SEPARATORS = " -()+./"
#: Queries at least this long (in characters) use the trigram index.
TRIGRAM_MIN = 3
#: Names are split into grams up to this many characters in.
GRAM_SPAN = 40
#: Marks the first-character gram (``\x1e张``); ends every gram in SQLite's FTS table.
GRAM_START, GRAM_END = "\x1e", "\x1f"
#: The PostgreSQL function that splits a name into its grams, and its GIN index.
PG_GRAMS, PG_GRAMS_INDEX = "guanxi_name_grams", "ix_customer_name_grams"
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


def _gram(q: str) -> str:
    """The gram a one- or two-character query looks up: ``\x1e张`` (first character), ``协和``."""
    return GRAM_START + q if len(q) == 1 else q


def _fts_hits(match: str) -> Any:
    hits = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match")
    return hits.bindparams(match=match).columns(column("rowid", Integer))


def customer_clause(q: str) -> Any:
    """A WHERE clause on ``customer``: the customers matching search text ``q``."""
    from core.models import Customer

    q = q.replace(GRAM_START, "").replace(GRAM_END, "")
    if not q:
        return false()
    dialect = _dialect()
    if len(q) < TRIGRAM_MIN:
        if dialect == "sqlite":
            return Customer.id.in_(_fts_hits("grams : " + _fts_phrase(_gram(q) + GRAM_END)))
        if dialect == "postgresql":
            grams = func.guanxi_name_grams(Customer.name)
            return grams.op("@>")(cast(postgresql.array([_gram(q)]), postgresql.ARRAY(Text)))
        return Customer.name.contains(q, autoescape=True)

    digits = _digits_query(q)
    if dialect == "sqlite":
        match = "{name phone email code} : " + _fts_phrase(q)
        if digits and digits != q:
            match += " OR phone : " + _fts_phrase(digits)
        return Customer.id.in_(_fts_hits(match))
    if dialect == "postgresql":

        def contains(column: Any, value: str) -> Any:
            return column.icontains(value, autoescape=True)
    else:

        def contains(column: Any, value: str) -> Any:
            return column.contains(value, autoescape=True)

    clauses = [contains(Customer.name, q), contains(Customer.email, q), contains(Customer.code, q)]
    if digits:
        phone = literal_column(phone_digits_sql("customer.phone"), String)
        clauses.append(contains(phone, digits))
    return or_(*clauses)


# -- the index ---------------------------------------------------------------------------------


def _sqlite_grams(name: str) -> str:
    """SQL for the ``grams`` column of a customer whose name is SQL ``name``."""
    positions = ", ".join(f"({k})" for k in range(1, GRAM_SPAN + 1))
    return (
        f"char(30) || substr({name}, 1, 1) || char(31) || ("
        f"SELECT coalesce(group_concat(' ' || substr({name}, column1, 2) || char(31), ''), '') "
        f"FROM (VALUES {positions}) WHERE column1 < length({name}))"
    )


def _terms(row: str) -> str:
    """The indexed values of customer ``row`` (a table name or ``new``), in FTS column order."""
    phone = phone_digits_sql(row + ".phone")
    return f"{row}.name, {phone}, {row}.email, {row}.code, {_sqlite_grams(row + '.name')}"


#: PostgreSQL: the grams of a name, as an array (what the GIN index holds).
_PG_GRAMS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_GRAMS}(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array_agg(gram) FROM (
        SELECT chr(30) || substr(value, 1, 1) AS gram WHERE value <> ''
        UNION
        SELECT substr(value, k, 2) FROM generate_series(1, least(length(value) - 1, {GRAM_SPAN})) k
    ) AS grams
$$"""


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
        conn.execute(text(_PG_GRAMS_FUNCTION))
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {PG_GRAMS_INDEX} ON customer "
                f"USING gin ({PG_GRAMS}(name))"
            )
        )
        return
    if conn.dialect.name != "sqlite":
        return
    conn.execute(
        text(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
            "name, phone, email, code, grams, tokenize = 'trigram')"
        )
    )
    columns = f"INSERT INTO {FTS_TABLE} (rowid, name, phone, email, code, grams)"
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
        conn.execute(text(f"DROP INDEX IF EXISTS {PG_GRAMS_INDEX}"))
        conn.execute(text(f"DROP FUNCTION IF EXISTS {PG_GRAMS}(text)"))
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
    return type_ == "index" and name in (PG_INDEX, PG_GRAMS_INDEX)

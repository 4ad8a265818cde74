"""Customer search: the customers whose name, phone, e-mail or code contain what was typed.

A phone matches on its digits whatever separators either side typed (``138-0013-8000`` finds
``13800138000`` and the other way round). Letters match without regard to case.

Queries of three characters or more are served by a trigram index, so searching a million
customers reads only the rows that hold the text (bench/lists.py):

* **PostgreSQL**: the ``pg_trgm`` extension and one GIN index (:data:`PG_INDEX`) over name,
  e-mail, code and the phone's digits; the query is ``ILIKE '%q%'``, which the index serves.
* **SQLite**: an FTS5 table with the ``trigram`` tokenizer (:data:`FTS_TABLE`, SQLite ≥ 3.34);
  the query is ``id IN (SELECT rowid FROM … MATCH)``. Writing FTS5 rows costs 60–80 µs a
  customer, which would make imports eight times slower, so the table is brought up to date
  in sets by :func:`refresh` (the ``customers.search_index`` job, every minute) instead of row
  by row: it holds the customers up to ``indexed_to`` (:data:`STATE_TABLE`); triggers note
  the ids of customers changed or deleted since (:data:`QUEUE_TABLE`, a few µs, and only on
  updates and deletes). A search reads the index for the rest and scans only the customers
  the index does not hold yet, so it is always complete.

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

from sqlalchemy import (
    Text,
    cast,
    column,
    false,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    union,
)
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
#: SQLite: one row, ``indexed_to``: the highest customer id the FTS table has been filled to.
STATE_TABLE = "customer_search_state"
#: SQLite: ids of customers changed or deleted since they were indexed.
QUEUE_TABLE = "customer_search_queue"
#: The PostgreSQL GIN index on ``customer``.
PG_INDEX = "ix_customer_search_trgm"
_TRIGGERS = ("customer_search_ad", "customer_search_au")


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


def _phone_digits(phone: Any) -> Any:
    """The digits of ``phone`` as an SQL expression (literals inline, so that PostgreSQL
    recognises its indexed expression)."""
    expr = func.coalesce(phone, literal_column("''"))
    for ch in PHONE_SEPARATORS:
        expr = func.replace(expr, literal_column(f"'{ch}'"), literal_column("''"))
    return expr


def _scan(row: Any, q: str, dialect: str) -> Any:
    """What the index answers for ``q``, as a condition on the columns of ``row``: for
    customers the index does not hold yet, and on databases without one."""
    if len(q) == 1:
        return row.name.startswith(q, autoescape=True)
    if len(q) < TRIGRAM_MIN:
        return row.name.contains(q, autoescape=True)
    if dialect == "postgresql":

        def contains(column: Any, value: str) -> Any:
            return column.icontains(value, autoescape=True)
    else:

        def contains(column: Any, value: str) -> Any:
            return column.contains(value, autoescape=True)  # SQLite's LIKE ignores ASCII case

    clauses = [contains(row.name, q), contains(row.email, q), contains(row.code, q)]
    digits = _digits_query(q)
    if digits:
        clauses.append(contains(_phone_digits(row.phone), digits))
    return or_(*clauses)


def _fts_match(q: str) -> str:
    if len(q) < TRIGRAM_MIN:
        return "grams : " + _fts_phrase(_gram(q) + GRAM_END)
    match = "{name phone email code} : " + _fts_phrase(q)
    digits = _digits_query(q)
    if digits and digits != q:
        match += " OR phone : " + _fts_phrase(digits)
    return match


def _sqlite_clause(q: str) -> Any:
    from core.models import Customer

    fts, queue, state = table(FTS_TABLE), table(QUEUE_TABLE), table(STATE_TABLE)
    queued = select(column("customer_id")).select_from(queue)
    indexed = (
        select(column("rowid"))
        .select_from(fts)
        .where(literal_column(FTS_TABLE).op("MATCH")(_fts_match(q)))
        .where(column("rowid").not_in(queued))
    )
    live = Customer.__table__.alias("unindexed")
    indexed_to = select(column("indexed_to")).select_from(state).scalar_subquery()
    newer = select(live.c.id).where(live.c.id > indexed_to, _scan(live.c, q, "sqlite"))
    changed = select(live.c.id).where(live.c.id.in_(queued), _scan(live.c, q, "sqlite"))
    return Customer.id.in_(union(indexed, newer, changed))


def customer_clause(q: str) -> Any:
    """A WHERE clause on ``customer``: the customers matching search text ``q``."""
    from core.models import Customer

    q = q.replace(GRAM_START, "").replace(GRAM_END, "")
    if not q:
        return false()
    dialect = _dialect()
    if dialect == "sqlite":
        return _sqlite_clause(q)
    if dialect == "postgresql" and len(q) < TRIGRAM_MIN:
        grams = func.guanxi_name_grams(Customer.name)
        return grams.op("@>")(cast(postgresql.array([_gram(q)]), postgresql.ARRAY(Text)))
    return _scan(Customer, q, dialect)


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


#: PostgreSQL: the grams of a name, as an array (what the GIN index holds). Its COST tells the
#: planner that calling it on every row is dear: without it a surname search walked the
#: newest-first index calling it per row (370 ms at a million) instead of using the index (57 ms).
_PG_GRAMS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_GRAMS}(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 5000 AS $$
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
    for ddl in (
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5("
        "name, phone, email, code, grams, tokenize = 'trigram')",
        f"CREATE TABLE {STATE_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "indexed_to INTEGER NOT NULL)",
        f"INSERT INTO {STATE_TABLE} (id, indexed_to) VALUES (1, 0)",
        f"CREATE TABLE {QUEUE_TABLE} (customer_id INTEGER PRIMARY KEY)",
        f"CREATE TRIGGER customer_search_ad AFTER DELETE ON customer "
        f"BEGIN INSERT OR IGNORE INTO {QUEUE_TABLE} (customer_id) VALUES (old.id); END",
        "CREATE TRIGGER customer_search_au AFTER UPDATE OF name, phone, email, code ON customer "
        f"BEGIN INSERT OR IGNORE INTO {QUEUE_TABLE} (customer_id) VALUES (new.id); END",
    ):
        conn.execute(text(ddl))
    refresh(conn)


def refresh(conn: Connection) -> int:
    """Bring SQLite's search index up to date, in sets: index the customers added since the
    last refresh, re-index those changed or deleted. Returns how many were (re)indexed.

    Run inside one transaction on ``conn`` (the caller commits); it starts by writing, so it
    holds SQLite's write lock throughout and no customer added meanwhile is skipped. Other
    databases keep their index themselves: 0.
    """
    if conn.dialect.name != "sqlite":
        return 0
    conn.execute(
        text(f"DELETE FROM {FTS_TABLE} WHERE rowid IN (SELECT customer_id FROM {QUEUE_TABLE})")
    )
    done = conn.execute(text(f"SELECT indexed_to FROM {STATE_TABLE}")).scalar_one()
    top = conn.execute(text("SELECT coalesce(max(id), 0) FROM customer")).scalar_one()
    added = conn.execute(
        text(
            f"INSERT INTO {FTS_TABLE} (rowid, name, phone, email, code, grams) "
            f"SELECT customer.id, {_terms('customer')} FROM customer "
            f"WHERE customer.id > :done AND customer.id <= :top "
            f"OR customer.id IN (SELECT customer_id FROM {QUEUE_TABLE})"
        ),
        {"done": done, "top": top},
    ).rowcount
    conn.execute(text(f"DELETE FROM {QUEUE_TABLE}"))
    conn.execute(text(f"UPDATE {STATE_TABLE} SET indexed_to = :top"), {"top": top})
    return max(added, 0)


def refresh_job(company: Any = None) -> str:
    """The ``customers.search_index`` job: :func:`refresh` in its own transaction."""
    from core.db import db

    with db.engine.begin() as conn:
        return f"{refresh(conn)} indexed"


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
    for name in (FTS_TABLE, STATE_TABLE, QUEUE_TABLE):
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def is_index_object(name: str | None, type_: str) -> bool:
    """Whether schema object ``name`` belongs to the search index (not in the models)."""
    if not name:
        return False
    if type_ == "table":
        return name == FTS_TABLE or name.startswith(FTS_TABLE + "_")  # state, queue, shadows
    return type_ == "index" and name in (PG_INDEX, PG_GRAMS_INDEX)

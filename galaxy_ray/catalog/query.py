"""Catalog queries: a region, an SQL filter, columns, sort order and a limit.

The rows of the region (or of every file) are registered with a DuckDB
connection that cannot touch files, and one ``SELECT`` applies the filter,
the columns, the order and the limit.  A ``--where`` filter is checked first
(:func:`validate_where`): one expression over the catalog's columns, nothing
else.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Iterable, Sequence

import duckdb
import pyarrow as pa

from galaxy_ray.catalog.galaxy_zoo import catalog_tree, friendly_expressions
from galaxy_ray.catalog.output import convert_table
from galaxy_ray.catalog.regions import Box, Cone, as_region
from galaxy_ray.catalog.scan import Catalog, ScanStats, as_catalog
from galaxy_ray.errors import GalaxyRayError

__all__ = [
    "validate_where",
    "query",
    "cone_search",
    "box_search",
    "quote_identifier",
    "where_clause",
    "check_columns",
    "split_list",
    "source_connection",
    "run_sql",
    "quote_known_columns",
    "unknown_column_message",
]

#: Named SQL functions a --where filter may call (operators such as + or LIKE are always allowed).
_WHERE_FUNCTIONS = frozenset("""
abs sign round floor ceil ceiling trunc sqrt cbrt exp ln log log10 log2 pow power pi
sin cos tan asin acos atan atan2 radians degrees isnan isinf isfinite greatest least
coalesce ifnull nullif lower upper lcase ucase length strlen trim ltrim rtrim substr substring
starts_with ends_with prefix suffix contains strpos instr position replace concat
regexp_matches regexp_full_match like_escape ilike_escape not_like_escape
""".split())
#: Expression node classes a --where filter may contain.
_WHERE_CLASSES = frozenset({"COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "OPERATOR",
                            "FUNCTION", "BETWEEN", "CASE", "CAST"})
#: Statement parts that must be empty/absent for a pure filter.
_EMPTY_PARTS = ("modifiers", "group_expressions", "group_sets")
_NULL_PARTS = ("having", "sample", "qualify")


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def unknown_column_message(name: str, columns: Sequence[str]) -> str:
    """``unknown column 'x'`` with the closest column names (difflib), not the whole list."""
    close = difflib.get_close_matches(name, list(columns), n=3, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), [c.lower() for c in columns], n=3, cutoff=0.4)
        close = [next(c for c in columns if c.lower() == k) for k in close]
    hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(columns)} columns; `--columns all` lists them)"
    return f"unknown column {name!r}{hint}"


#: A single-quoted SQL string or a double-quoted identifier: left as written by :func:`quote_known_columns`.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def quote_known_columns(where: str, columns: Sequence[str]) -> str:
    """``where`` with every catalog column that SQL would not read as one name double-quoted.

    Galaxy Zoo DESI's column names hold hyphens (``disk-edge-on_yes_fraction``,
    ``bar_strong_90pc-lower``), which SQL reads as subtractions; such a name is
    quoted here (case-insensitively, never inside a string literal or an
    identifier that is already quoted), so a filter can be written as the column
    names read.  Names of letters, digits and ``_`` are left alone.
    """
    special = sorted((c for c in columns if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c)), key=len, reverse=True)
    if not special:
        return where
    pattern = re.compile(r"(?<![\w\-.\"])(" + "|".join(map(re.escape, special)) + r")(?![\w\-\"])", re.I)
    lower = {c.lower(): c for c in special}
    out, pos = [], 0
    for m in _QUOTED.finditer(where):
        out.append(pattern.sub(lambda k: quote_identifier(lower[k.group(1).lower()]), where[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(pattern.sub(lambda k: quote_identifier(lower[k.group(1).lower()]), where[pos:]))
    return "".join(out)


def where_clause(where: str | None) -> str:
    """`` WHERE (...)`` of a filter, or ``""``.

    The expression sits on its own lines so that a trailing ``--`` comment
    cannot swallow the closing parenthesis.
    """
    return f" WHERE (\n{where.strip()}\n)" if where else ""


def _as_written(name: str, where: str) -> str:
    """The word of ``where`` that SQL split at its hyphens into ``name - ...`` (``disk-edge-on_yes_fractio``
    for ``disk``), so that an unknown hyphenated name is reported, and matched, whole."""
    words = re.findall(r"[A-Za-z_][\w\-]*", where)
    return next((w for w in words if "-" in w and w.split("-", 1)[0].lower() == name.lower()), name)


def _is_pure_filter(node: dict) -> bool:
    """True when a parsed statement is ``SELECT * FROM catalog WHERE ...`` and nothing more."""
    source = node.get("from_table", {})
    return (
        node.get("type") == "SELECT_NODE"
        and source.get("type") == "BASE_TABLE"
        and source.get("table_name") == "catalog"
        and not node.get("cte_map", {}).get("map")
        and [e.get("class") for e in node.get("select_list", [])] == ["STAR"]
        and all(not node.get(k) for k in _EMPTY_PARTS)
        and all(node.get(k) is None for k in _NULL_PARTS)
        and node.get("where_clause") is not None
    )


def _check_expression(obj: Any, where: str, lower: dict[str, str], used: set[str]) -> None:
    """Walk a parsed expression: allowed node classes, known columns (added to ``used``), allowed functions."""
    if isinstance(obj, list):
        for item in obj:
            _check_expression(item, where, lower, used)
        return
    if not isinstance(obj, dict):
        return
    cls = obj.get("class")
    if cls is not None and "type" in obj:
        if cls not in _WHERE_CLASSES:
            what = "subqueries" if cls == "SUBQUERY" else f"{cls.lower()} expressions"
            raise GalaxyRayError(f"--where {where!r}: {what} are not allowed; filter on catalog columns only")
        if cls == "COLUMN_REF":
            names = obj.get("column_names", [])
            if len(names) == 2 and names[0] == "catalog":
                names = names[1:]
            if len(names) != 1 or names[0].lower() not in lower:
                raise GalaxyRayError(f"--where {where!r}: "
                                     + unknown_column_message(_as_written('.'.join(names), where),
                                                              list(lower.values())))
            used.add(lower[names[0].lower()])
        if cls == "FUNCTION":
            name = str(obj.get("function_name", "")).lower()
            operator = obj.get("is_operator") and not name.replace("_", "").isalnum()
            if not operator and name not in _WHERE_FUNCTIONS:
                raise GalaxyRayError(f"--where {where!r}: function {name}() is not allowed in a filter")
            if obj.get("schema") or obj.get("catalog"):
                raise GalaxyRayError(f"--where {where!r}: qualified function names are not allowed")
    for value in obj.values():
        _check_expression(value, where, lower, used)


def validate_where(where: str, columns: Sequence[str]) -> set[str]:
    """Check that ``where`` is one SQL filter expression over the catalog's columns.

    The text is parsed by DuckDB (``json_serialize_sql``), never run.

    Returns
    -------
    set of str
        The catalog columns it refers to.

    Raises
    ------
    GalaxyRayError
        For anything but a single expression: several statements, subqueries,
        table functions (``read_parquet``, ...), unknown columns or functions.
    """
    text = quote_known_columns(where.strip(), columns)
    if not text:
        raise GalaxyRayError("--where is empty; give a filter such as \"p_merger > 0.8\"")
    sql = "SELECT * FROM catalog" + where_clause(text)
    tree = json.loads(duckdb.connect().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        msg = str(tree.get("error_message", "syntax error")).splitlines()[0]
        raise GalaxyRayError(f"--where {where!r}: not a valid SQL expression ({msg})")
    stmts = tree.get("statements", [])
    node = stmts[0].get("node", {}) if len(stmts) == 1 else {}
    if not _is_pure_filter(node):
        raise GalaxyRayError(f"--where {where!r}: must be a single filter expression on the catalog's columns")
    used: set[str] = set()
    _check_expression(node["where_clause"], where, {c.lower(): c for c in columns}, used)
    return used


def check_columns(names: Iterable[str], columns: Sequence[str], option: str) -> list[str]:
    """``names`` matched case-insensitively to ``columns``.

    Raises
    ------
    GalaxyRayError
        A name is not a column (``option`` names the command-line option).
    """
    lower = {c.lower(): c for c in columns}
    out = []
    for name in names:
        key = name.strip().lower()
        if key not in lower:
            hint = unknown_column_message(name.strip(), list(columns)).split(f"{name.strip()!r}", 1)[1]
            raise GalaxyRayError(f"{option} {name.strip()!r}: unknown column{hint}")
        out.append(lower[key])
    return out


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """Comma-separated items of a string or of each string of a list, stripped, empty ones dropped."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _parse_sort(sort: str | Sequence[str] | None, columns: Sequence[str]) -> list[tuple[str, bool]]:
    """``"p_merger desc, ra"`` or ``"-p_merger"`` -> [(column, descending)]."""
    keys = []
    for item in split_list(sort):
        words = item.split()
        desc = False
        if words[0].startswith("-"):
            words[0], desc = words[0][1:], True
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            desc = words[1].lower() == "desc"
            words = words[:1]
        if len(words) != 1:
            raise GalaxyRayError(f"--sort {item!r}: give COLUMN, COLUMN DESC or -COLUMN")
        keys.append((check_columns(words, columns, "--sort")[0], desc))
    return keys


def source_connection(cat: Catalog, region: Cone | Box | None, needed: Sequence[str], prune: bool = True):
    """DuckDB connection with ``catalog`` = the rows of ``region`` (or every row), ``needed`` columns."""
    con = cat.connection()
    if region is not None:
        con.register("catalog", cat.scan_region(region, needed, prune=prune))
    else:
        con.register("catalog", cat.dataset())
        cat.last_scan = ScanStats(files=len(cat.files))
    return con


def run_sql(con, sql: str, where: str | None) -> pa.Table:
    """Run ``sql``; a DuckDB error becomes one line naming the ``--where`` filter when there is one."""
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise GalaxyRayError(f"--where {where!r}: {first}" if where else f"query failed: {first}") from None


def query(
    catalog: Catalog | str,
    cone: Sequence[float] | Cone | None = None,
    box: Sequence[float] | Box | None = None,
    where: str | None = None,
    columns: str | Sequence[str] | None = None,
    sort: str | Sequence[str] | None = None,
    limit: int | None = None,
    output: str = "pandas",
    prune: bool = True,
    friendly: bool = False,
):
    """Query a catalog.

    Parameters
    ----------
    catalog : Catalog or str
        An opened catalog or its URI.
    cone : (ra, dec, radius), or Cone, optional
        Each a float in degrees or an angle string (``"30arcmin"``; :mod:`galaxy_ray.catalog.angles`).
    box : (ra_min, ra_max, dec_min, dec_max), or Box, optional
        Likewise degrees or angle strings.
        ``ra_min > ra_max`` crosses RA = 0/360.
    where : str, optional
        SQL filter expression on catalog columns, e.g. ``"p_merger > 0.8 AND morphology = 'spiral'"``.
    columns : str or sequence of str, optional
        Columns to return (comma-separated or a list); all when None or ``"all"``.
    sort : str or sequence of str, optional
        ``"p_merger desc"``, ``"-p_merger"``, several separated by commas.
    limit : int, optional
        Keep at most this many rows (after sorting).
    output : {"pandas", "astropy", "arrow"}
    prune : bool
        Use the HEALPix row-group pruning (False: scan every row group).
    friendly : bool
        GZ DESI's friendly view (Walmsley et al. 2023, MNRAS 526, 4768): each question's
        ``{question}_{answer}_fraction`` columns are NULL where its ``{question}_proportion_asked``
        is below 0.5 (:func:`galaxy_ray.catalog.galaxy_zoo.friendly_expressions`); the filter
        and the sort see the masked values.

    Returns
    -------
    pandas.DataFrame, astropy.table.Table or pyarrow.Table

    Raises
    ------
    GalaxyRayError
        A bad region, filter, column, sort key, limit or output, a catalog that cannot be
        opened, or ``friendly`` on a catalog without conditional fraction columns.
    """
    cat = as_catalog(catalog)
    region = as_region(cone, box)
    names = cat.columns
    if isinstance(columns, str) and columns.strip().lower() == "all":
        columns = None
    selected = check_columns(split_list(columns), names, "--columns") or names
    where = quote_known_columns(where, names) if where else where
    where_cols = validate_where(where, names) if where else set()
    keys = _parse_sort(sort, names)
    if limit is not None and int(limit) < 0:
        raise GalaxyRayError(f"--limit {limit}: must be >= 0")
    needed_set = set(selected) | where_cols | {k for k, _ in keys}
    source, asked = _friendly_source(cat, needed_set) if friendly else ("catalog", set())
    con = source_connection(cat, region, [c for c in names if c in needed_set | asked], prune=prune)
    sql = f"SELECT {', '.join(map(quote_identifier, selected))} FROM {source}" + where_clause(where)
    if keys:
        order = (f"{quote_identifier(k)} {'DESC' if d else 'ASC'} NULLS LAST" for k, d in keys)
        sql += " ORDER BY " + ", ".join(order)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return convert_table(run_sql(con, sql, where), output)


def _friendly_source(cat: Catalog, needed: set[str]) -> tuple[str, set[str]]:
    """The friendly view of ``catalog`` as an SQL ``FROM`` item, and the proportion-asked columns it reads.

    Raises
    ------
    GalaxyRayError
        The catalog has no tree's ``_fraction`` and ``_proportion_asked`` columns.
    """
    tree = catalog_tree(cat.columns)
    if tree is None:
        raise GalaxyRayError(
            f"--friendly: {cat.uri} has no {{question}}_{{answer}}_fraction and {{question}}_proportion_asked "
            "columns (a classes catalog, or a GZ2 catalog written before they were added: rerun infer)")
    masked = friendly_expressions(tree, sorted(needed), quote_identifier)
    if not masked:
        return "catalog", set()
    asked = {tree.proportion_asked_columns[k] for k, q in enumerate(tree.questions)
             if any(tree.fraction_columns[i] in masked for i in q.indices)}
    replace = ", ".join(f"{expr} AS {quote_identifier(name)}" for name, expr in masked.items())
    return f"(SELECT * REPLACE ({replace}) FROM catalog) AS catalog", asked


def cone_search(catalog: Catalog | str, ra: float, dec: float, radius: float, **kwargs):
    """Rows within ``radius`` of (``ra``, ``dec``): floats in degrees or angle strings (``"5arcsec"``); see :func:`query`."""
    return query(catalog, cone=(ra, dec, radius), **kwargs)


def box_search(catalog: Catalog | str, ra_min: float, ra_max: float, dec_min: float, dec_max: float, **kwargs):
    """Rows inside an RA/Dec box (``ra_min > ra_max`` crosses RA = 0/360); see :func:`query`."""
    return query(catalog, box=(ra_min, ra_max, dec_min, dec_max), **kwargs)

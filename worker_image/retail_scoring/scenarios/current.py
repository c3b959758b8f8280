"""The current result per key (publishing mode `current_per_key`): of every result published for a
key, the one with the newest version (the forecast origin, the churn snapshot). A run publishing an
older version than what is current (a backfill of last month) fills keys that have nothing newer
and changes no key that has: publishing order never decides what is current, versions do."""

import pyarrow as pa


def newest_per_key(current: pa.Table, published: pa.Table, key: tuple[str, ...], version: str) -> pa.Table:
    """`current` updated with `published` (tables of the same columns): per key, the row of the
    newest version; on equal versions the published row (a rerun replaces what it scored before).
    Sorted by key."""
    published = published.select(current.column_names).cast(current.schema)
    both = pa.concat_tables([current, published]).append_column(
        "_published", pa.array([0] * len(current) + [1] * len(published), pa.int8())
    )
    ranked = both.sort_by([*((c, "ascending") for c in key), (version, "descending"), ("_published", "descending")])
    others = [c for c in current.column_names if c not in key]
    newest = ranked.group_by(list(key), use_threads=False).aggregate([(c, "first") for c in others])
    named = {f"{c}_first": c for c in others}
    return newest.rename_columns([named.get(c, c) for c in newest.column_names]).select(current.column_names)

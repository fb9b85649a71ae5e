"""Key digests: find deleted keys by comparing small per-bucket summaries, not key sets.

Every primary key is hashed the same way by the source database, by the warehouse and by
Python (the reference, used for SQLite and the tests): the key's text (parts joined by
U+001F, a NULL part written U+001E) is hashed with MD5; hex digits 1-5 give its bucket
(modulo ``bucket_count``, a power of two), digits 6-15 a 40-bit value. A bucket's digest
is (rows, sum of values). Both sides compute their digests where the keys are, so only
``bucket_count`` rows travel; then only the keys of the buckets whose digests differ are
read and compared exactly.

Why this is sound: a bucket where the hub holds a key the source lost differs unless the
source gained other keys in that bucket with the same count and the same 40-bit sum,
about one chance in 2^40 per differing bucket. Repeated source keys (no primary-key
constraint) make their bucket differ too, which only costs reading that bucket's keys.
Any text that the two sides render differently (padded CHAR, another character set) makes
buckets differ, never agree: such a difference costs time, not deletes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from hub.catalog.models import Resource

MAX_BUCKETS = 1 << 20  # 5 hex digits
KEYS_PER_BUCKET = 16  # about this many keys travel per differing bucket
KEY_SEPARATOR = "\x1f"
NULL_PART = "\x1e"
DIGEST_TYPES = ("string", "integer")  # key types whose text every engine writes alike


@runtime_checkable
class KeyDigestSource(Protocol):
    """A connector whose source computes key digests (``connectors.sql``)."""

    dialect: str

    def key_digests(self, resource: Resource, bucket_count: int) -> KeyDigests: ...

    def keys_in_buckets(
        self, resource: Resource, buckets: Sequence[int], bucket_count: int
    ) -> Iterator[pa.RecordBatch]: ...


def bucket_count_for(keys: int) -> int:
    """The power of two near ``keys / KEYS_PER_BUCKET`` (at least 16, at most 2^20)."""
    count = 16
    while count < MAX_BUCKETS and count * KEYS_PER_BUCKET < keys:
        count *= 2
    return count


def key_hash(parts: Sequence[Any], bucket_count: int) -> tuple[int, int]:
    """The reference: (bucket, 40-bit value) of one key."""
    hashed = key_hash60(parts)
    return (hashed >> 40) % bucket_count, hashed & ((1 << 40) - 1)


class KeyDigests:
    """Per non-empty bucket: how many key rows, and the sum of their values; three int64
    numpy arrays sorted by bucket (a million buckets cost 24 MB, not a dict of tuples)."""

    def __init__(
        self, bucket_count: int, buckets: Any = (), rows: Any = (), sums: Any = ()
    ) -> None:
        order = np.argsort(np.asarray(buckets, dtype=np.int64), kind="stable")
        self.bucket_count = bucket_count
        self.buckets = np.asarray(buckets, dtype=np.int64)[order]
        self.rows = np.asarray(rows, dtype=np.int64)[order]
        self.sums = np.asarray(sums, dtype=np.int64)[order]

    @classmethod
    def from_rows(cls, bucket_count: int, rows: Iterable[Sequence[Any]]) -> KeyDigests:
        """From (bucket, rows, sum) rows as a DB-API driver returns them (Decimal too)."""
        listed = list(rows)
        if not listed:
            return cls(bucket_count)
        try:  # in C, not a Python int per value (numpy reads a Decimal as int() does)
            table = np.array(listed, dtype=np.int64).reshape(len(listed), 3)
        except (OverflowError, TypeError, ValueError):
            columns = list(zip(*((int(b), int(n), int(t)) for b, n, t in listed), strict=True))
            return cls(bucket_count, *columns)
        return cls(bucket_count, table[:, 0], table[:, 1], table[:, 2])

    @classmethod
    def from_arrow(cls, bucket_count: int, table: pa.Table) -> KeyDigests:
        """From a (bucket, rows, sum) Arrow table, without a Python object per bucket."""
        import pyarrow as pa

        from connectors.base import int64_values

        columns = [
            int64_values(table.column(i).cast(pa.int64()).combine_chunks()) for i in range(3)
        ]
        return cls(bucket_count, *columns)

    @classmethod
    def of_keys(cls, bucket_count: int, keys: Iterable[Sequence[Any]]) -> KeyDigests:
        """Digests computed in Python (the reference)."""
        totals: dict[int, tuple[int, int]] = {}
        for key in keys:
            bucket, value = key_hash(key, bucket_count)
            rows, total = totals.get(bucket, (0, 0))
            totals[bucket] = (rows + 1, total + value)
        return cls.from_rows(bucket_count, ((b, n, t) for b, (n, t) in totals.items()))

    @property
    def keys(self) -> int:
        return int(self.rows.sum())

    def differing(self, other: KeyDigests) -> list[int]:
        """Buckets whose digests differ, in order. Raises ValueError for other bucket counts."""
        if other.bucket_count != self.bucket_count:
            raise ValueError(f"bucket counts differ: {self.bucket_count} and {other.bucket_count}")
        every = np.union1d(self.buckets, other.buckets)
        mine, theirs = self._spread(every), other._spread(every)
        changed: list[int] = every[(mine[0] != theirs[0]) | (mine[1] != theirs[1])].tolist()
        return changed

    def _spread(self, every: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and sums over ``every`` bucket (zero where this side has none)."""
        rows = np.zeros(len(every), dtype=np.int64)
        sums = np.zeros(len(every), dtype=np.int64)
        where = np.searchsorted(every, self.buckets)
        rows[where], sums[where] = self.rows, self.sums
        return rows, sums

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyDigests) and (
            self.bucket_count == other.bucket_count and not self.differing(other)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class DigestSql:
    """The digest SQL of one dialect.

    ``hashed`` hashes a row's key columns into the 60-bit integer ``h``; ``bucket_of`` and
    ``value_of`` read the bucket and the value from ``{h}``.
    """

    hashed: str
    bucket_of: str
    value_of: str
    fence: str = ""  # keeps the planner from inlining ``hashed`` (hashing each row twice)
    sum_type: str = "BIGINT"  # a bucket's sum stays below 2^63 up to 2^23 keys in it

    @property
    def bucket(self) -> str:
        """A row's bucket from its key columns, for a WHERE clause."""
        return self.bucket_of.format(h=f"({self.hashed})")

    def query_hashed(self, source: str) -> str:
        """Digests of ``source``, which yields the hashes themselves as column ``h``."""
        return (
            f"SELECT {self.bucket_of.format(h='h')} AS b, count(*), "
            f"CAST(sum({self.value_of.format(h='h')}) AS {self.sum_type}) "
            f"FROM {source} GROUP BY {self.bucket_of.format(h='h')}"
        )

    def query(self, source: str) -> str:
        """Digests of the keys of ``source`` (a quoted table name or a parenthesised
        subquery with an alias), one row (bucket, rows, sum) per non-empty bucket."""
        return (
            f"SELECT {self.bucket_of.format(h='h')} AS b, count(*), "
            f"CAST(sum({self.value_of.format(h='h')}) AS {self.sum_type}) "
            f"FROM (SELECT {self.hashed} AS h FROM {source}{self.fence}) hashed "
            f"GROUP BY {self.bucket_of.format(h='h')}"
        )


def key_digest_sql(dialect: str, key_columns: Sequence[str], bucket_count: int) -> DigestSql:
    """The digest SQL for ``dialect`` (postgresql, mysql, mariadb, sqlite, duckdb).

    Raises ValueError for another dialect, or a bucket count that is not a power of two.
    """
    if bucket_count < 1 or bucket_count & (bucket_count - 1) or bucket_count > MAX_BUCKETS:
        raise ValueError(f"bucket count must be a power of two up to 2^20, not {bucket_count}")
    # every dialect reads the first 15 hex digits once, as one 60-bit integer h
    low_bits = "1099511627775"  # 2^40 - 1
    if dialect == "postgresql":
        parts = ", ".join(f"coalesce({_quote_double(c)}::text, chr(30))" for c in key_columns)
        return DigestSql(
            hashed=f"('x' || left(md5(concat_ws(chr(31), {parts})), 15))::bit(60)::bigint",
            bucket_of=f"(({{h}} >> 40) % {bucket_count})",
            value_of=f"({{h}} & {low_bits})",
            fence=" OFFSET 0",
        )
    if dialect == "duckdb":
        parts = ", ".join(f"coalesce({_quote_double(c)}::VARCHAR, chr(30))" for c in key_columns)
        return DigestSql(
            hashed=f"('0x' || left(md5(concat_ws(chr(31), {parts})), 15))::BIGINT",
            bucket_of=f"(({{h}} >> 40) % {bucket_count})",
            value_of=f"({{h}} & {low_bits})",
        )
    if dialect in ("mysql", "mariadb"):
        # the text as utf8mb4 whatever the column's character set, as the hub holds it
        parts = ", ".join(
            f"COALESCE(CAST(`{c.replace('`', '``')}` AS CHAR), CHAR(30 USING utf8mb4))"
            for c in key_columns
        )
        text = f"CONVERT(CONCAT_WS(CHAR(31 USING utf8mb4), {parts}) USING utf8mb4)"
        return DigestSql(
            hashed=f"CAST(CONV(LEFT(MD5({text}), 15), 16, 10) AS UNSIGNED)",
            bucket_of=f"MOD({{h}} >> 40, {bucket_count})",  # MOD, not %: DB-API paramstyle
            value_of=f"({{h}} & {low_bits})",
            fence=" LIMIT 18446744073709551615",
            sum_type="SIGNED",
        )
    if dialect == "sqlite":
        # SQLite has no MD5: the hub registers the reference as a function
        arguments = ", ".join(_quote_double(c) for c in key_columns)
        return DigestSql(
            hashed=f"hub_key_hash({arguments})",
            bucket_of=f"(({{h}} >> 40) % {bucket_count})",
            value_of=f"({{h}} & {low_bits})",
            fence=" LIMIT -1",
        )
    raise ValueError(f"no key digests for the {dialect} dialect")


def _quote_double(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def key_hash60(parts: Sequence[Any]) -> int:
    """The first 15 hex digits of the key text's MD5 as an integer (what every dialect's
    SQL computes): bucket = (h >> 40) % bucket_count, value = h & (2^40 - 1)."""
    text = KEY_SEPARATOR.join(NULL_PART if p is None else str(p) for p in parts)
    # the top 60 bits of the digest: its first 15 hex digits
    return (
        int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:8], "big") >> 4
    )


def _sqlite_key_hash(*parts: Any) -> int:
    # SQLite calls this once per key row: a one-part text key skips the join
    if len(parts) == 1 and type(parts[0]) is str:
        digest = hashlib.md5(parts[0].encode(), usedforsecurity=False).digest()
        return int.from_bytes(digest[:8], "big") >> 4
    return key_hash60(parts)


def register_sqlite_functions(connection: Any) -> None:
    """Give a sqlite3 connection ``hub_key_hash(part, ...)``."""
    connection.create_function("hub_key_hash", -1, _sqlite_key_hash, deterministic=True)

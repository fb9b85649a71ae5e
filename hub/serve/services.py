"""What the API's routes share in one process, made on first use: the key and grant cache,
the rate limiter, the record source, the audit writer and the hub's keys."""

from __future__ import annotations

import threading
from typing import Any

from hub.catalog import Catalog
from hub.serve.access import Access
from hub.serve.ratelimit import RateLimiter, open_limiter
from hub.serve.sources import RecordSource, open_source
from hub.settings import Settings


class Services:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings, self.catalog = settings, catalog
        self.resources = {r.code: r for r in catalog.resources}
        self.applications = {a.code: a for a in catalog.applications}
        self.access = Access(settings, self.resources)
        self._lock = threading.Lock()
        self._limiter: RateLimiter | None = None
        self._source: RecordSource | None = None
        self._audit: Any = None
        self._signer: Any = None
        self._cursors: Any = None
        self._assertions: Any = None
        self._subject_key: bytes | None = None
        self._disputes: Any = None

    @property
    def limiter(self) -> RateLimiter:
        with self._lock:
            if self._limiter is None:
                self._limiter = open_limiter(self.settings)
            return self._limiter

    @property
    def source(self) -> RecordSource:
        with self._lock:
            if self._source is None:
                self._source = open_source(self.settings)
            return self._source

    @property
    def evidence_signer(self) -> Any:
        """The key evidence documents are signed with (hub.evidence)."""
        from hub.evidence import load_evidence_signer

        with self._lock:
            if self._signer is None:
                self._signer = load_evidence_signer(self.settings)
            return self._signer

    @property
    def subject_key(self) -> bytes:
        """The key of the subject digest in evidence documents (hub.evidence)."""
        from hub.evidence import load_subject_key

        with self._lock:
            if self._subject_key is None:
                self._subject_key = load_subject_key(self.settings)
            return self._subject_key

    @property
    def cursors(self) -> Any:
        from hub.keyring import secret_bytes
        from hub.serve.cursors import CursorCodec

        with self._lock:
            if self._cursors is None:
                self._cursors = CursorCodec(
                    secret_bytes(self.settings, "cursor_key"), self.settings.api_cursor_ttl_s
                )
            return self._cursors

    @property
    def assertions(self) -> Any:
        from hub.identity import AssertionVerifier

        with self._lock:
            if self._assertions is None:
                self._assertions = AssertionVerifier(self.settings)
            return self._assertions

    @property
    def disputes(self) -> Any:
        """The flagged records readers are told about (hub.quality.disputes): kept per
        resource for a second, dropped at once when this process (API or portal) files
        or answers a dispute, so one filed by another process shows within that second."""
        from hub.quality.disputes import DisputeFlags

        with self._lock:
            if self._disputes is None:
                self._disputes = DisputeFlags(self.settings, self.catalog)
            return self._disputes

    @property
    def audit(self) -> Any:
        from hub.audit import open_log

        with self._lock:
            if self._audit is None:
                self._audit = open_log(self.settings).start()
            return self._audit

    async def aclose(self) -> None:
        """Drain the audit writer, close the record source's pools and the kept ops
        connection (at the end of the app's lifespan)."""
        source = self._source
        self.close()
        if source is not None:
            await source.aclose()

    def close(self) -> None:
        with self._lock:
            if self._audit is not None:
                self._audit.close()
                self._audit = None
            if self._source is not None:
                self._source.close()
                self._source = None
            if self._limiter is not None:
                self._limiter.close()
                self._limiter = None
            if self._disputes is not None:
                self._disputes.close()
                self._disputes = None
        self.access.close()

"""When and how long to wait before sending a request again."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # extra attempts after the first
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_delay: float = 30.0

    def delay(self, attempt: int, resp: httpx.Response | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        if resp is not None:
            after = resp.headers.get("retry-after", "")
            if after.isdigit():
                return min(float(after), self.max_delay)
        base = self.backoff * 2**attempt
        return min(base * (0.5 + random.random()), self.max_delay)  # jitter spreads retries

    @staticmethod
    def may_retry(idempotent: bool, exc: httpx.TransportError) -> bool:
        # A connection that never opened sent nothing: any call may go again. Once a request
        # may have reached the server, only a call that is safe to repeat goes again.
        return idempotent or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))

    def next_delay(
        self,
        attempt: int,
        idempotent: bool,
        *,
        resp: httpx.Response | None = None,
        exc: httpx.TransportError | None = None,
    ) -> float | None:
        """Seconds to wait before sending again after attempt number ``attempt`` (0-based)
        ended in ``exc`` or answered ``resp``; None when it must not go again: out of
        retries, an answer that is final, or a call that is unsafe to repeat."""
        if attempt >= self.retries:
            return None
        if exc is not None:
            return self.delay(attempt) if self.may_retry(idempotent, exc) else None
        if resp is not None and resp.status_code in RETRY_STATUSES and idempotent:
            return self.delay(attempt, resp)
        return None

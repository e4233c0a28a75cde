"""Abuse limits: a token bucket per connection, and a connection count per client address."""

from __future__ import annotations

import time
from collections import Counter

OK = "ok"
LIMITED = "limited"
ABUSIVE = "abusive"
ABUSE_FACTOR = 5  # refused messages a client may pile up, in bursts, before it is closed
_monotonic = time.monotonic


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Take one token; False when none is left."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """Messages beyond the rate are refused; a client that keeps flooding is abusive."""

    __slots__ = ("messages", "refusals")

    def __init__(self, rate: float, burst: int) -> None:
        self.messages = TokenBucket(rate, burst)
        self.refusals = TokenBucket(rate, burst * ABUSE_FACTOR)

    def check(self) -> str:
        """OK, LIMITED (answer ``rate_limited``) or ABUSIVE (close the socket).

        Runs for every frame: ``messages.take()`` written out here (one call less).
        """
        bucket = self.messages
        now = _monotonic()
        tokens = bucket.tokens + (now - bucket.stamp) * bucket.rate
        if tokens > bucket.capacity:
            tokens = bucket.capacity
        bucket.stamp = now
        if tokens >= 1:
            bucket.tokens = tokens - 1
            return OK
        bucket.tokens = tokens
        return LIMITED if self.refusals.take() else ABUSIVE


class AddressCounter:
    """Open connections per client address, capped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; False when it is at the cap."""
        if self.open[address] >= self.limit:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        """Count one connection from ``address`` less."""
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

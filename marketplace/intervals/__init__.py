"""The community interval market: standing orders cleared every boundary, settled in batches."""

from marketplace.intervals.market import IntervalMarket

__all__ = ["IntervalMarket"]

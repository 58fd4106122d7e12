"""EngineSpec: the static parameters a matcher needs, in integer units.

Built from the config (:meth:`EngineSpec.from_config`) or directly by tests and
benchmarks. The Numba engine and the reference matcher take the same spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from numbex.engine import records as r


@dataclass(frozen=True)
class EngineSpec:
    """Per-instrument bands, limits and states; per-account STP modes; capacities."""

    band_low: tuple[int, ...]
    band_high: tuple[int, ...]
    max_order_lots: tuple[int, ...]
    states: tuple[int, ...]
    stp_modes: tuple[int, ...]
    max_orders: int
    max_stops: int

    def __post_init__(self) -> None:
        n = len(self.band_low)
        if not (len(self.band_high) == len(self.max_order_lots) == len(self.states) == n):
            raise ValueError("EngineSpec: per-instrument tuples differ in length")
        if n == 0 or n > 0xFFFF:
            raise ValueError(f"EngineSpec: {n} instruments; need 1..65535")
        for i in range(n):
            if not 0 < self.band_low[i] <= self.band_high[i]:
                raise ValueError(f"EngineSpec: instrument {i} band [{self.band_low[i]}, {self.band_high[i]}]")
        if not self.stp_modes:
            raise ValueError("EngineSpec: at least one account is required")
        if self.max_orders <= 0 or self.max_stops <= 0:
            raise ValueError("EngineSpec: capacities must be positive")

    @property
    def n_instruments(self) -> int:
        return len(self.band_low)

    @property
    def n_accounts(self) -> int:
        return len(self.stp_modes)

    @classmethod
    def from_config(cls, config) -> "EngineSpec":
        bands = [instrument.band_ticks for instrument in config.instruments]
        return cls(
            band_low=tuple(low for low, _ in bands),
            band_high=tuple(high for _, high in bands),
            max_order_lots=tuple(i.max_order_lots for i in config.instruments),
            states=tuple(r.STATE_BY_NAME[i.state] for i in config.instruments),
            stp_modes=tuple(r.STP_BY_NAME[a.stp] for a in config.accounts),
            max_orders=config.engine.max_orders,
            max_stops=config.engine.max_stops,
        )

    @classmethod
    def uniform(cls, n_instruments: int, low: int, high: int, n_accounts: int = 1,
                stp: int = r.STP_OFF, max_orders: int = 1 << 16, max_stops: int = 1 << 12,
                max_order_lots: int = 1 << 40) -> "EngineSpec":
        """Same band and limits for every instrument (benchmarks and tests)."""
        return cls(
            band_low=(low,) * n_instruments,
            band_high=(high,) * n_instruments,
            max_order_lots=(max_order_lots,) * n_instruments,
            states=(r.STATE_OPEN,) * n_instruments,
            stp_modes=(stp,) * n_accounts,
            max_orders=max_orders,
            max_stops=max_stops,
        )

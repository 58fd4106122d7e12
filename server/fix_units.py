"""Exact conversion between FIX decimal prices/quantities and engine ticks/lots.

Inside numbex prices are int64 ticks and quantities int64 lots (per-instrument
``tick_size`` and ``lot_size`` from the config).  FIX carries decimal strings;
this module converts them exactly, with integer and ``Decimal`` arithmetic and
never a float.  A price that is not a whole number of ticks is refused, never
rounded (``REASON_OFF_TICK``); a quantity that is not a whole number of lots is
refused (``REASON_OFF_LOT``).

Formatting back is pure integer arithmetic: ``ticks * tick_units`` written with
``scale`` decimals, where ``tick_size = tick_units * 10**-scale`` (the config
limits ticks to 0.0001, so ``scale <= 4``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from numbex.engine import records as r

#: Largest magnitude accepted for ticks and lots (int64 with headroom for notional sums).
MAX_UNITS = 1 << 53
#: Decimals of AvgPx beyond the tick's own.
AVERAGE_EXTRA_DECIMALS = 6


def shown(value: bytes) -> str:
    """Client bytes for a Text message or log: ASCII, anything else replaced (never raises)."""
    return value.decode("ascii", "replace")


class RequestRefused(ValueError):
    """A request the gateway refuses itself; ``reason`` is the numbex REASON_* code."""

    def __init__(self, reason: int, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


def _decimal(value: bytes, name: str) -> Decimal:
    try:
        number = Decimal(value.decode("ascii"))
    except (InvalidOperation, UnicodeDecodeError):
        raise RequestRefused(r.REASON_BAD_QUANTITY if name == "OrderQty" else r.REASON_OFF_TICK,
                              f"{name} {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise RequestRefused(r.REASON_OFF_TICK, f"{name} {value!r} is not a finite number")
    return number


class InstrumentUnits:
    """Tick and lot arithmetic of one instrument.

    Parameters
    ----------
    symbol : str
    tick_size : str
        Decimal string, e.g. ``"0.01"``.
    lot_size : int
        Shares per lot.
    """

    __slots__ = ("symbol", "symbol_bytes", "tick", "lot_size", "scale", "tick_units", "_power",
                 "_fraction_scale", "_average_power")

    def __init__(self, symbol: str, tick_size: str, lot_size: int) -> None:
        tick = Decimal(tick_size)
        if not tick.is_finite() or tick <= 0 or lot_size <= 0:
            raise ValueError(f"{symbol}: tick_size {tick_size!r} and lot_size {lot_size} must be positive")
        self.symbol = symbol
        self.symbol_bytes = symbol.encode("ascii")
        self.tick = tick
        self.lot_size = lot_size
        exponent = tick.normalize().as_tuple().exponent
        self.scale = max(0, -exponent)
        self.tick_units = int(tick.scaleb(self.scale))
        self._power = 10 ** self.scale
        self._fraction_scale = tuple(10 ** (self.scale - digits) for digits in range(self.scale + 1))
        self._average_power = 10 ** AVERAGE_EXTRA_DECIMALS

    # ------------------------------------------------------------ FIX -> engine

    def price_ticks(self, value: bytes, name: str = "Price") -> int:
        """Ticks of a FIX price; RequestRefused(REASON_OFF_TICK) when off the grid."""
        whole, dot, fraction = value.partition(b".")
        if whole.isdigit() and len(whole) < 16 and (fraction.isdigit() or not fraction):
            fraction = fraction.rstrip(b"0")                     # plain digits: integer arithmetic
            if len(fraction) <= self.scale:
                units = int(whole) * self._power
                if fraction:
                    units += int(fraction) * self._fraction_scale[len(fraction)]
                ticks, remainder = divmod(units, self.tick_units)
                if not remainder:
                    return ticks
            raise RequestRefused(r.REASON_OFF_TICK, f"{name} {shown(value)} is not a multiple of "
                                 f"the tick size {self.tick} of {self.symbol}")
        number = _decimal(value, name)
        units = number.scaleb(self.scale)
        if units != units.to_integral_value():
            raise RequestRefused(r.REASON_OFF_TICK, f"{name} {shown(value)} is not a multiple of "
                                  f"the tick size {self.tick} of {self.symbol}")
        whole = int(units)
        ticks, remainder = divmod(whole, self.tick_units)
        if remainder:
            raise RequestRefused(r.REASON_OFF_TICK, f"{name} {shown(value)} is not a multiple of "
                                  f"the tick size {self.tick} of {self.symbol}")
        if abs(ticks) > MAX_UNITS:
            raise RequestRefused(r.REASON_OUTSIDE_BAND, f"{name} {shown(value)} is out of range")
        return ticks

    def quantity_lots(self, value: bytes) -> int:
        """Lots of a FIX quantity (shares); REASON_OFF_LOT when not whole lots."""
        if value.isdigit() and len(value) < 16:
            shares = int(value)
        else:
            number = _decimal(value, "OrderQty")
            if number != number.to_integral_value():
                raise RequestRefused(r.REASON_OFF_LOT, f"OrderQty {shown(value)} is not a whole number")
            shares = int(number)
        lots, remainder = divmod(shares, self.lot_size)
        if remainder:
            raise RequestRefused(r.REASON_OFF_LOT, f"OrderQty {shares} is not a multiple of the lot "
                                  f"size {self.lot_size} of {self.symbol}")
        if lots <= 0:
            raise RequestRefused(r.REASON_BAD_QUANTITY, f"OrderQty {shown(value)} must be positive")
        if lots > MAX_UNITS:
            raise RequestRefused(r.REASON_QTY_ABOVE_MAX, f"OrderQty {shares} is out of range")
        return lots

    # ------------------------------------------------------------ engine -> FIX

    def price_text(self, ticks: int) -> bytes:
        """FIX price of ``ticks`` (``scale`` decimals, no exponent)."""
        units = ticks * self.tick_units
        if not self.scale:
            return b"%d" % units
        sign = b"-" if units < 0 else b""
        whole, fraction = divmod(abs(units), self._power)
        return b"%s%d.%0*d" % (sign, whole, self.scale, fraction)

    def quantity_text(self, lots: int) -> bytes:
        """FIX quantity (shares) of ``lots``."""
        return b"%d" % (lots * self.lot_size)

    def average_text(self, notional: int, cum: int) -> bytes:
        """AvgPx: ``notional`` (sum of ticks x lots) over ``cum`` lots, rounded half up to
        ``scale + 6`` decimals, trailing zeros dropped; ``0`` when nothing executed."""
        if cum <= 0:
            return b"0"
        if notional % cum == 0:
            return self.price_text(notional // cum)
        scaled = notional * self.tick_units * self._average_power
        quotient, remainder = divmod(scaled, cum)
        if 2 * remainder >= cum:
            quotient += 1
        decimals = self.scale + AVERAGE_EXTRA_DECIMALS
        sign = b"-" if quotient < 0 else b""
        whole, fraction = divmod(abs(quotient), 10 ** decimals)
        text = b"%0*d" % (decimals, fraction)
        text = text.rstrip(b"0")
        return b"%s%d.%s" % (sign, whole, text) if text else b"%s%d" % (sign, whole)


def instrument_units(config) -> tuple[list[InstrumentUnits], dict[bytes, int]]:
    """Units of every configured instrument, by index, and Symbol bytes -> index."""
    units = [InstrumentUnits(i.symbol, i.tick_size, i.lot_size) for i in config.instruments]
    return units, {unit.symbol_bytes: index for index, unit in enumerate(units)}

"""The numbex configuration tree: one TOML file loaded into frozen dataclasses.

Every table maps to a dataclass below; an unknown key, a missing required key
or a value of the wrong type or range is a :class:`ConfigError` that names the
key by its dotted path (``instruments[2].tick_size``).  Prices are written as
decimal strings and converted here, once, to integer ticks.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path


class ConfigError(ValueError):
    """A configuration file is not valid; the message names the key."""


IDLE_STRATEGIES = ("busy-spin", "backoff", "block")
STP_MODES = ("off", "cancel-resting", "cancel-aggressor", "cancel-both")
INSTRUMENT_STATES = ("open", "halted", "closed")


@dataclass(frozen=True)
class ExchangeConfig:
    comp_id: str = "NUMBEX"
    data_dir: str = "./var"
    instance: str = "numbex"  # prefix of shared-memory names under /dev/shm


@dataclass(frozen=True)
class EngineConfig:
    idle: str = "backoff"
    idle_spin_us: int = 50  # backoff: spin this long after the last work, then
    idle_yield_us: int = 1000  # sched_yield this long, then park
    cpus: tuple[int, ...] = ()
    numa_node: int = -1
    durability: str = "sync"
    async_sync_interval_ms: int = 5
    max_orders: int = 1 << 20
    max_stops: int = 1 << 16
    batch: int = 256
    wal_segment_bytes: int = 256 << 20
    snapshot_every_records: int = 1_000_000
    snapshot_every_seconds: int = 300
    keep_snapshots: int = 3


@dataclass(frozen=True)
class FixListenerConfig:
    host: str = "127.0.0.1"
    port: int = 9878
    heartbeat_seconds_max: int = 300
    logon_timeout_seconds: int = 10
    throttle_logout_excess: int = 1000  # throttled messages in a row that end a session (Logout)
    throttle_logout_ms: int = 5000  # or an unbroken run of throttled messages this long
    store_sync: str = "batch"  # session stores: batch (fdatasync before sending), always, none
    shutdown_logout_ms: int = 2000  # clean stop: Logout to every session, wait this long for the replies


@dataclass(frozen=True)
class OuchListenerConfig:
    host: str = "127.0.0.1"
    port: int = 9879


@dataclass(frozen=True)
class GatewayConfig:
    idle: str = "backoff"
    idle_spin_us: int = 50
    idle_yield_us: int = 1000
    cpus: tuple[int, ...] = ()
    mode: str = "poll"
    ring_slots: int = 1 << 16
    outbound_buffer_bytes: int = 4 << 20
    fix: FixListenerConfig = field(default_factory=FixListenerConfig)
    ouch: OuchListenerConfig = field(default_factory=OuchListenerConfig)


@dataclass(frozen=True)
class PublisherConfig:
    idle: str = "backoff"
    cpus: tuple[int, ...] = ()
    interface: str = "127.0.0.1"
    l3_group: str = "239.192.0.1"
    l3_port: int = 30001
    l2_group: str = "239.192.0.2"
    l2_port: int = 30002
    rerequest_host: str = "127.0.0.1"
    rerequest_port: int = 30011
    ttl: int = 1


@dataclass(frozen=True)
class InstrumentConfig:
    """One instrument.  ``tick_size`` and ``reference_price`` are decimal strings."""

    symbol: str
    tick_size: str = "0.01"
    lot_size: int = 1
    reference_price: str = "100.00"
    band_percent: int = 10
    max_order_lots: int = 1_000_000
    state: str = "open"

    @property
    def tick(self) -> Decimal:
        return Decimal(self.tick_size)

    @property
    def reference_ticks(self) -> int:
        return int(Decimal(self.reference_price) / self.tick)

    @property
    def band_ticks(self) -> tuple[int, int]:
        """Inclusive (low, high) price band in ticks: reference +/- band_percent."""
        reference = self.reference_ticks
        width = reference * self.band_percent // 100
        return max(1, reference - width), reference + width


@dataclass(frozen=True)
class AccountConfig:
    name: str
    stp: str = "off"


@dataclass(frozen=True)
class SessionConfig:
    comp_id: str
    account: str
    password: str = ""
    messages_per_second: int = 10_000
    cancel_on_disconnect: bool = True


@dataclass(frozen=True)
class Config:
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    publisher: PublisherConfig = field(default_factory=PublisherConfig)
    instruments: tuple[InstrumentConfig, ...] = ()
    accounts: tuple[AccountConfig, ...] = ()
    sessions: tuple[SessionConfig, ...] = ()

    def instrument_index(self, symbol: str) -> int:
        for index, instrument in enumerate(self.instruments):
            if instrument.symbol == symbol:
                return index
        raise KeyError(symbol)

    def account_index(self, name: str) -> int:
        for index, account in enumerate(self.accounts):
            if account.name == name:
                return index
        raise KeyError(name)


# --------------------------------------------------------------------------- loading


def _build(cls: type, data: typing.Any, path: str):
    """Build dataclass ``cls`` from TOML ``data``; every error names ``path``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else key
            raise ConfigError(f"unknown key {where!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        where = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {where!r}")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], where)
    return cls(**kwargs)


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_convert(item_type, item, f"{where}[{i}]") for i, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint!r}")  # pragma: no cover


def _check_choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")


def _check_decimal(text: str, where: str, positive: bool = True) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{where}: {text!r} is not a decimal number") from None
    if not number.is_finite() or (positive and number <= 0):
        raise ConfigError(f"{where}: {text!r} must be a positive decimal number")
    return number


def validate(config: Config) -> Config:
    """Check ranges and cross-references; return ``config`` unchanged."""
    instance = config.exchange.instance
    if not instance or not all(ch.isalnum() or ch in "-_" for ch in instance) or len(instance) > 64:
        raise ConfigError(f"exchange.instance: {instance!r} must be 1-64 letters, digits, - or _")
    for role in ("engine", "gateway", "publisher"):
        _check_choice(getattr(config, role).idle, IDLE_STRATEGIES, f"{role}.idle")
    _check_choice(config.engine.durability, ("sync", "async"), "engine.durability")
    _check_choice(config.gateway.mode, ("poll", "uvloop"), "gateway.mode")
    _check_choice(config.gateway.fix.store_sync, ("batch", "always", "none"), "gateway.fix.store_sync")
    positive = {
        "engine.max_orders": config.engine.max_orders,
        "engine.max_stops": config.engine.max_stops,
        "engine.batch": config.engine.batch,
        "engine.wal_segment_bytes": config.engine.wal_segment_bytes,
        "engine.snapshot_every_records": config.engine.snapshot_every_records,
        "engine.snapshot_every_seconds": config.engine.snapshot_every_seconds,
        "engine.keep_snapshots": config.engine.keep_snapshots,
        "engine.async_sync_interval_ms": config.engine.async_sync_interval_ms,
        "gateway.outbound_buffer_bytes": config.gateway.outbound_buffer_bytes,
        "gateway.fix.throttle_logout_excess": config.gateway.fix.throttle_logout_excess,
        "gateway.fix.throttle_logout_ms": config.gateway.fix.throttle_logout_ms,
    }
    for role in ("engine", "gateway"):
        for key in ("idle_spin_us", "idle_yield_us"):
            value = getattr(getattr(config, role), key)
            if value < 0:
                raise ConfigError(f"{role}.{key}: must be >= 0, got {value}")
    if config.gateway.fix.shutdown_logout_ms < 0:
        raise ConfigError(f"gateway.fix.shutdown_logout_ms: must be >= 0, got {config.gateway.fix.shutdown_logout_ms}")
    for where, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where}: must be positive, got {value}")
    slots = config.gateway.ring_slots
    if slots < 2 or slots & (slots - 1):
        raise ConfigError(f"gateway.ring_slots: must be a power of two >= 2, got {slots}")
    for where, port in (
        ("gateway.fix.port", config.gateway.fix.port),
        ("gateway.ouch.port", config.gateway.ouch.port),
        ("publisher.l3_port", config.publisher.l3_port),
        ("publisher.l2_port", config.publisher.l2_port),
        ("publisher.rerequest_port", config.publisher.rerequest_port),
    ):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}: {port} is not a port number")
    if not config.instruments:
        raise ConfigError("instruments: at least one instrument is required")
    if len(config.instruments) > 65535:
        raise ConfigError("instruments: at most 65535 instruments")
    seen: set[str] = set()
    for i, instrument in enumerate(config.instruments):
        where = f"instruments[{i}]"
        if not instrument.symbol or len(instrument.symbol) > 8 or not instrument.symbol.isascii():
            raise ConfigError(f"{where}.symbol: {instrument.symbol!r} must be 1-8 ASCII characters")
        if instrument.symbol in seen:
            raise ConfigError(f"{where}.symbol: duplicate symbol {instrument.symbol!r}")
        seen.add(instrument.symbol)
        tick = _check_decimal(instrument.tick_size, f"{where}.tick_size")
        reference = _check_decimal(instrument.reference_price, f"{where}.reference_price")
        if reference % tick:
            raise ConfigError(
                f"{where}.reference_price: {instrument.reference_price} is not a multiple of "
                f"tick_size {instrument.tick_size}"
            )
        if (tick * 10000) % 1:
            raise ConfigError(f"{where}.tick_size: {instrument.tick_size} is finer than 0.0001")
        if instrument.lot_size <= 0:
            raise ConfigError(f"{where}.lot_size: must be positive, got {instrument.lot_size}")
        if not 0 < instrument.band_percent <= 100:
            raise ConfigError(f"{where}.band_percent: must be in 1..100, got {instrument.band_percent}")
        if instrument.max_order_lots <= 0:
            raise ConfigError(f"{where}.max_order_lots: must be positive, got {instrument.max_order_lots}")
        low, high = instrument.band_ticks
        if high - low + 1 > 1 << 22:
            raise ConfigError(f"{where}: price band spans {high - low + 1} ticks; at most 4194304")
        _check_choice(instrument.state, INSTRUMENT_STATES, f"{where}.state")
    if not config.accounts:
        raise ConfigError("accounts: at least one account is required")
    names: set[str] = set()
    for i, account in enumerate(config.accounts):
        if account.name in names:
            raise ConfigError(f"accounts[{i}].name: duplicate account {account.name!r}")
        names.add(account.name)
        _check_choice(account.stp, STP_MODES, f"accounts[{i}].stp")
    comp_ids: set[str] = set()
    for i, session in enumerate(config.sessions):
        where = f"sessions[{i}]"
        if session.comp_id in comp_ids:
            raise ConfigError(f"{where}.comp_id: duplicate session {session.comp_id!r}")
        if session.comp_id == config.exchange.comp_id:
            raise ConfigError(f"{where}.comp_id: {session.comp_id!r} is the exchange's own CompID")
        comp_ids.add(session.comp_id)
        if session.account not in names:
            raise ConfigError(f"{where}.account: unknown account {session.account!r}")
        if session.messages_per_second <= 0:
            raise ConfigError(f"{where}.messages_per_second: must be positive")
    return config


def from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from parsed TOML."""
    return validate(_build(Config, data, ""))


def loads(text: str) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}") from None
    return from_dict(data)


def default_text() -> str:
    """The embedded default configuration file."""
    return resources.files("numbex").joinpath("default.toml").read_text()


def load(path: str | Path | None = None) -> Config:
    """Load ``path``, or the embedded defaults when ``path`` is None."""
    if path is None:
        return loads(default_text())
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    return loads(text)

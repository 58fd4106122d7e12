"""Test harness for the FIX gateway: the gateway core and FIX clients wired in memory.

``GatewayHarness`` runs :class:`numbex.server.fix_gateway.FixGatewayCore` over a
``LocalLink`` (an in-process matching engine) with in-memory stores; each
``Client`` is a FIX initiator session (numbex's own, sans-IO) connected to the
core without sockets.  ``client.send(b"D", body)`` then ``harness.pump()``
moves bytes both ways and runs gateway batches until everything is quiet.

Import with ``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_CACHE_DIR", str(os.path.join(os.path.dirname(__file__), "..", ".numba_cache")))

from fix_helpers import NANOS, T0  # noqa: E402

from numbex import config as config_module  # noqa: E402
from numbex.engine.spec import EngineSpec  # noqa: E402
from numbex.protocol.fix import (  # noqa: E402
    ApplicationMessage, Disconnect, FixMessage, FixSession, MemoryStore, MessageRejected,
    RejectReceived, SessionEstablished, SessionSettings,
)
from numbex.server.engine_link import LocalLink  # noqa: E402
from numbex.server.fix_gateway import FixGatewayCore  # noqa: E402

TRANSACT = b"20240301-12:00:00.000"

CONFIG_TEXT = """
[exchange]
comp_id = "NUMBEX"
[engine]
max_orders = 65536
max_stops = 4096
[[instruments]]
symbol = "TEST"
tick_size = "0.01"
lot_size = 1
reference_price = "100.00"
band_percent = 10
[[instruments]]
symbol = "LOTS"
tick_size = "0.05"
lot_size = 100
reference_price = "50.00"
band_percent = 20
[[accounts]]
name = "ACC1"
[[accounts]]
name = "ACC2"
[[accounts]]
name = "ACC3"
[[sessions]]
comp_id = "CLIENT1"
account = "ACC1"
[[sessions]]
comp_id = "CLIENT2"
account = "ACC2"
[[sessions]]
comp_id = "SLOW"
account = "ACC3"
messages_per_second = 5
[[sessions]]
comp_id = "KEEP"
account = "ACC3"
cancel_on_disconnect = false
"""


def load_config(text: str = CONFIG_TEXT, extra: str = ""):
    return config_module.loads(text + extra)


class Client:
    """A FIX initiator connected to the harness's gateway core in memory."""

    def __init__(self, harness: GatewayHarness, comp_id: str, store: MemoryStore | None = None) -> None:
        self.harness = harness
        self.comp_id = comp_id
        self.store = store if store is not None else MemoryStore()
        settings = SessionSettings(comp_id, initiator=True, target_comp_id="NUMBEX", heartbeat_seconds=30)
        self.session = FixSession(settings, harness.now, store=self.store)
        self.connection = harness.core.open_connection(None, harness.now, peer=comp_id)
        self.received: list[FixMessage] = []     # application messages from numbex
        self.events: list = []
        self.disconnected = False

    def logon(self) -> None:
        self.session.logon(self.harness.now)
        self.harness.pump()
        assert self.session.state.name == "ACTIVE", self.events

    def send(self, msg_type: bytes, body: bytes) -> None:
        data = self.session.send(msg_type, body, self.harness.now)
        self.harness.core.data_received(self.connection, data, self.harness.now)

    def deliver(self, data: bytes) -> None:
        if not data or self.disconnected:
            return
        self.session.receive_data(data, self.harness.now)
        while (event := self.session.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ApplicationMessage):
                self.received.append(event.message)
            elif isinstance(event, Disconnect):
                self.disconnected = True

    def outgoing(self) -> bytes:
        return b"" if self.disconnected else self.session.data_to_send()

    def take(self) -> list[FixMessage]:
        """Application messages received since the last take."""
        messages, self.received = self.received, []
        return messages

    def drop(self) -> None:
        """The client's TCP connection goes away."""
        self.disconnected = True
        self.harness.core.connection_lost(self.connection, self.harness.now)
        self.harness.pump()

    def rejects(self) -> list:
        return [e for e in self.events if isinstance(e, (MessageRejected, RejectReceived))]


class GatewayHarness:
    """Gateway core + LocalLink + clients, all in memory, time under test control."""

    def __init__(self, config=None, now_ns: int = T0, **core_options) -> None:
        self.now = now_ns
        self.config = config if config is not None else load_config()
        self.link = LocalLink(EngineSpec.from_config(self.config), clock_ns=lambda: self.now)
        self.stores: dict[str, MemoryStore] = {}
        self.core = FixGatewayCore(self.config, self.link, now_ns,
                                   store_factory=lambda comp_id: self.stores.setdefault(comp_id, MemoryStore()),
                                   **core_options)
        self.clients: list[Client] = []
        self.writes = 0
        self.epoch = 0
        self.restored = 0

    def restart(self, *, cancel_stale_orders: bool = True, **core_options) -> None:
        """The gateway dies (nothing of its run but the stores survives) and starts again on the
        same engine, a new epoch, orders restored from the stores as ``build_gateway`` does."""
        from numbex.server.fix_restore import restore_orders

        for client in self.clients:
            client.disconnected = True
        self.clients = []
        self.link.rewind()
        self.epoch += 1
        self.core = FixGatewayCore(self.config, self.link, self.now,
                                   store_factory=lambda comp_id: self.stores.setdefault(comp_id, MemoryStore()),
                                   epoch=self.epoch, **core_options)
        self.restored = restore_orders(self.core.entry, self.core.directory.store)
        if cancel_stale_orders:
            self.core.entry.cancel_stale_orders()
        self.pump()

    def client(self, comp_id: str = "CLIENT1", logon: bool = True, store: MemoryStore | None = None) -> Client:
        client = Client(self, comp_id, store)
        self.clients.append(client)
        if logon:
            client.logon()
        return client

    def pump(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            for client in self.clients:
                data = client.outgoing()
                if data:
                    moved = True
                    self.core.data_received(client.connection, data, self.now)
            work = self.core.process(self.now)
            for connection in self.core.take_output():
                data = connection.take_output()
                if data:
                    self.writes += 1
                    moved = True
                    for client in self.clients:
                        if client.connection is connection:
                            client.deliver(data)
                if connection.closing and not connection.closed:
                    self.core.closed(connection)
            if not moved and not work:
                return
        raise AssertionError("gateway and clients kept talking")

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * NANOS)
        self.core.on_timer(self.now)
        for client in self.clients:
            if not client.disconnected:
                client.session.on_timer(self.now)
        self.pump()


def order_body(cl_ord_id: str, side: str = "1", qty: str = "100", ord_type: str = "2", price: str | None = "100.00",
               symbol: str | None = "TEST", tif: str | None = None, stop: str | None = None,
               exec_inst: str | None = None, extra: bytes = b"") -> bytes:
    """A NewOrderSingle body."""
    fields = [b"11=" + cl_ord_id.encode(), b"21=1"]
    if exec_inst is not None:
        fields.append(b"18=" + exec_inst.encode())
    if symbol is not None:
        fields.append(b"55=" + symbol.encode())
    fields += [b"54=" + side.encode(), b"60=" + TRANSACT, b"38=" + qty.encode(), b"40=" + ord_type.encode()]
    if price is not None:
        fields.append(b"44=" + price.encode())
    if stop is not None:
        fields.append(b"99=" + stop.encode())
    if tif is not None:
        fields.append(b"59=" + tif.encode())
    return b"\x01".join(fields) + b"\x01" + extra


def cancel_body(cl_ord_id: str, orig: str, side: str = "1", symbol: str = "TEST", order_id: str | None = None) -> bytes:
    body = b"41=%s\x01" % orig.encode()
    if order_id is not None:
        body += b"37=%s\x01" % order_id.encode()
    return body + b"11=%s\x0155=%s\x0154=%s\x0160=%s\x01" % (cl_ord_id.encode(), symbol.encode(), side.encode(),
                                                          TRANSACT)


def replace_body(cl_ord_id: str, orig: str, qty: str, price: str | None, side: str = "1", ord_type: str = "2",
                 symbol: str = "TEST", extra: bytes = b"") -> bytes:
    body = b"41=%s\x0111=%s\x0155=%s\x0154=%s\x0160=%s\x0138=%s\x0140=%s\x01" % (
        orig.encode(), cl_ord_id.encode(), symbol.encode(), side.encode(), TRANSACT, qty.encode(), ord_type.encode())
    if price is not None:
        body += b"44=%s\x01" % price.encode()
    return body + extra


def rest(harness: GatewayHarness, client: Client, cl_ord_id: str, side: str = "2", qty: str = "100",
         price: str = "100.00", symbol: str = "TEST") -> FixMessage:
    """A GTC limit order that rests: sent, pumped, its New acknowledgement returned."""
    client.send(b"D", order_body(cl_ord_id, side=side, qty=qty, price=price, tif="1", symbol=symbol))
    harness.pump()
    (ack,) = client.take()
    assert fields(ack, 150, 39) == ("0", "0"), ack
    return ack


def fields(message: FixMessage, *tags: int) -> tuple:
    return tuple(None if message.get(tag) is None else message.get(tag).decode() for tag in tags)


__all__ = ["Client", "GatewayHarness", "SessionEstablished", "cancel_body", "fields", "load_config",
           "order_body", "replace_body", "rest", "T0", "NANOS"]

"""numbex: a low-latency exchange server.

Subpackages: ``numbex.engine`` (records, matching kernels, engine process),
``numbex.protocol`` (wire codecs and the FIX session, no I/O),
``numbex.server`` (gateways and the supervisor), ``numbex.feed`` (market data),
``numbex.tools`` (benchmarks, replay, dumps).
"""

__version__ = "0.1.0"

"""The Numba engine agrees with the reference matcher event for event, field for field.

Hypothesis streams (shrunk on failure with NUMBEX_SHRINK=1) and long numpy-seeded
streams, on three specs: one instrument, several instruments with different bands,
limits and initial states, and tiny capacities.  Streams are fed in batches of 1..500 commands to exercise
the engine's batch boundaries; after every batch the books, stops, last prices
and counts of both must agree and satisfy the invariants of docs/SEMANTICS.md
(see tests/differential.py).  About 350,000 commands per run.
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numbex.engine.matcher import Engine  # noqa: E402
from numbex.engine.spec import EngineSpec  # noqa: E402
from differential import SPECS, batch_sizes, run_differential  # noqa: E402
from streams import command_streams, random_stream  # noqa: E402

# Shrinking a long failing stream can take minutes; the failure report already names
# the first differing event and its command.  NUMBEX_SHRINK=1 turns shrinking on.
PHASES = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if os.environ.get("NUMBEX_SHRINK") == "1" else ())
HYPOTHESIS = settings(deadline=None, max_examples=100, derandomize=True, database=None, phases=PHASES,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.large_base_example])


def _differential(spec: EngineSpec, commands, batch_seed: int) -> None:
    events = run_differential(spec, commands, batch_sizes(len(commands), batch_seed), engine_class=Engine)
    assert events >= len(commands)


@HYPOTHESIS
@given(commands=command_streams(SPECS["one_instrument"], max_size=300), batch_seed=st.integers(0, 2**32 - 1))
def test_hypothesis_streams_one_instrument(commands, batch_seed):
    _differential(SPECS["one_instrument"], commands, batch_seed)


@HYPOTHESIS
@given(commands=command_streams(SPECS["several_instruments"], max_size=300),
       batch_seed=st.integers(0, 2**32 - 1))
def test_hypothesis_streams_several_instruments(commands, batch_seed):
    _differential(SPECS["several_instruments"], commands, batch_seed)


@HYPOTHESIS
@given(commands=command_streams(SPECS["tiny_capacity"], max_size=300), batch_seed=st.integers(0, 2**32 - 1))
def test_hypothesis_streams_tiny_capacity(commands, batch_seed):
    _differential(SPECS["tiny_capacity"], commands, batch_seed)


@pytest.mark.parametrize(("spec_name", "seed", "count"), [
    ("one_instrument", 1, 150_000),
    ("one_instrument", 2, 30_000),
    ("one_instrument", 3, 30_000),
    ("several_instruments", 1, 30_000),
    ("several_instruments", 2, 30_000),
    ("tiny_capacity", 1, 15_000),
    ("tiny_capacity", 2, 15_000),
])
def test_random_streams(spec_name, seed, count):
    spec = SPECS[spec_name]
    _differential(spec, random_stream(spec, count, seed), batch_seed=seed)


def test_one_batch_and_single_commands_agree():
    """The whole stream as one batch, and one command per batch, give the same events."""
    spec = SPECS["one_instrument"]
    commands = random_stream(spec, 3000, seed=9)
    _differential(spec, commands, batch_seed=0)
    run_differential(spec, commands, [len(commands)], engine_class=Engine)
    run_differential(spec, commands, [1] * len(commands), engine_class=Engine)

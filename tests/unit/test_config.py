"""The config tree: embedded defaults load; bad keys and values are errors naming the key."""

import os

import pytest

from numbex import config as c
from numbex.engine.spec import EngineSpec
from numbex.engine import records as r


def test_embedded_defaults():
    cfg = c.load()
    assert [i.symbol for i in cfg.instruments] == ["TEST", "AAPL", "MSFT", "GOOG", "AMZN"]
    assert all(i.tick_size == "0.01" and i.lot_size == 1 for i in cfg.instruments)
    assert cfg.exchange.comp_id == "NUMBEX" and cfg.exchange.data_dir == "./var"
    assert [s.comp_id for s in cfg.sessions] == [f"CLIENT{i}" for i in range(1, 9)]
    assert cfg.gateway.fix.host == "127.0.0.1" and cfg.gateway.fix.port == 9878
    test = cfg.instruments[0]
    assert test.reference_ticks == 10000 and test.band_ticks == (9000, 11000)


def test_config_file_is_the_embedded_default():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert (root / "config" / "default.toml").read_text() == c.default_text()


def test_engine_spec_from_config():
    spec = EngineSpec.from_config(c.load())
    assert spec.n_instruments == 5 and spec.band_low[0] == 9000 and spec.band_high[0] == 11000
    assert spec.stp_modes == (r.STP_OFF, r.STP_CANCEL_RESTING, r.STP_CANCEL_RESTING,
                              r.STP_CANCEL_AGGRESSOR, r.STP_CANCEL_BOTH)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[engine]\nfoo = 1\n", "unknown key 'engine.foo'"),
        ("bogus = 1\n", "unknown key 'bogus'"),
        ('[engine]\nidle = "spin"\n', "engine.idle"),
        ('[engine]\nmax_orders = "many"\n', "engine.max_orders: expected an integer"),
        ("[engine]\nmax_orders = 0\n", "engine.max_orders: must be positive"),
        ("[gateway]\nring_slots = 1000\n", "gateway.ring_slots"),
        ("[gateway]\nidle_yield_us = -1\n", "gateway.idle_yield_us: must be >= 0"),
        ("[engine]\nidle_spin_us = -5\n", "engine.idle_spin_us: must be >= 0"),
        ("[gateway.fix]\nshutdown_logout_ms = -1\n", "gateway.fix.shutdown_logout_ms"),
        ("[gateway.fix]\nport = 70000\n", "gateway.fix.port"),
        ('[[instruments]]\nsymbol = "X"\ntick_size = "abc"\n[[accounts]]\nname="A"\n',
         "instruments[0].tick_size"),
        ('[[instruments]]\nsymbol = "X"\nreference_price = "100.005"\n[[accounts]]\nname="A"\n',
         "instruments[0].reference_price"),
        ('[[instruments]]\nsymbol = "X"\n[[instruments]]\nsymbol = "X"\n[[accounts]]\nname="A"\n',
         "duplicate symbol"),
        ('[[instruments]]\nprice = 1\n', "instruments[0]"),
        ('[[instruments]]\nsymbol = "X"\n[[accounts]]\nname="A"\nstp="sometimes"\n',
         "accounts[0].stp"),
        ('[[instruments]]\nsymbol = "X"\n[[accounts]]\nname="A"\n[[sessions]]\ncomp_id="C"\n'
         'account="B"\n', "sessions[0].account: unknown account 'B'"),
        ("this is = not toml [", "not valid TOML"),
        ("", "at least one instrument"),
    ],
)
def test_bad_config_names_the_key(text, message):
    with pytest.raises(c.ConfigError) as error:
        c.loads(text)
    assert message in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(c.ConfigError, match="cannot read config file"):
        c.load(tmp_path / "absent.toml")


def test_config_command(tmp_path, capsys):
    from numbex.cli import main

    assert main(["config"]) == 0
    assert '"symbol": "TEST"' in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nmode = 'threads'\n")
    assert main(["config", "--config", str(bad)]) == 2
    assert "gateway.mode" in capsys.readouterr().err


def test_numbex_profile_writes_the_command_profile(tmp_path, monkeypatch, capsys):
    import pstats

    from numbex.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nmode = 'threads'\n")
    monkeypatch.setenv("NUMBEX_PROFILE", str(tmp_path / "profiles"))
    assert main(["config", "--config", str(bad)]) == 2  # the command's own exit code
    capsys.readouterr()
    (path,) = (tmp_path / "profiles").iterdir()
    assert path.name == f"config-{os.getpid()}.prof"
    functions = {name for (_file, _line, name) in pstats.Stats(str(path)).stats}
    assert "run" in functions

"""``numbex config``: load a config file (or the embedded defaults), print it resolved."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: the embedded defaults)")
    parser.add_argument("--defaults", action="store_true", help="print the embedded default file")


def run(args: argparse.Namespace) -> int:
    from numbex import config as config_module

    if args.defaults:
        print(config_module.default_text(), end="")
        return 0
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as error:
        print(f"numbex config: {error}", file=sys.stderr)
        return 2
    resolved = dataclasses.asdict(config)
    for instrument, raw in zip(resolved["instruments"], config.instruments):
        instrument["band_ticks"] = list(raw.band_ticks)
        instrument["reference_ticks"] = raw.reference_ticks
    print(json.dumps(resolved, indent=2))
    return 0

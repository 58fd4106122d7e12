"""What every role process does first: its name in ps/top, logging, and its config."""

from __future__ import annotations

import logging
import sys


def set_process_title(title: str) -> None:
    """Show ``title`` (``numbex engine`` ...) in ps and top."""
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:  # pragma: no cover - a declared dependency
        pass


def begin_role(role: str, config_path: str | None):
    """Title the process ``numbex <role>``, log to stderr, load the config.

    Returns the :class:`numbex.config.Config`, or None after printing the error
    (the caller exits with status 2).
    """
    from numbex import config as config_module

    set_process_title(f"numbex {role}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {role} %(levelname)s %(message)s")
    try:
        return config_module.load(config_path)
    except config_module.ConfigError as error:
        print(f"numbex {role}: {error}", file=sys.stderr)
        return None

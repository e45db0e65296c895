"""TOML configuration files for ``kvdb store`` and ``kvdb pd``.

Every long flag is a key (``store-id = 3``, ``data-dir = "/var/lib/kvdb"``, ``pd =
"10.0.0.1:2379,..."``); a flag given on the command line wins over the file, so one file can
serve a fleet and a single process can still be adjusted by hand.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 1000**2,
               "gb": 1000**3}


def apply_config_file(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """Fill ``args`` from the file named by ``args.config`` where ``argv`` did not set them."""
    if args.config is None:
        return
    try:
        with open(args.config, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read config file {args.config}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {args.config} is not valid TOML: {exc}") from exc
    # Keys are the long flags' names (``key`` is --key, whose dest is tls_key).
    actions = {a.option_strings[0].removeprefix("--"): a for a in parser._actions
               if a.option_strings and a.dest not in ("help", "config")}
    given = {a.dest for a in actions.values() if any(_on_command_line(opt, argv) for opt in a.option_strings)}
    for key, value in data.items():
        action = actions.get(key.replace("_", "-"))
        if action is None:
            raise ValueError(f"unknown key '{key}' in config file {args.config}")
        if action.dest in given:
            continue
        setattr(args, action.dest, _convert(action, key, value))


def _on_command_line(option: str, argv: list[str]) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in argv)


def _convert(action: argparse.Action, key: str, value: object) -> object:
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ValueError(f"config key '{key}' must be true or false")
        return value
    if isinstance(value, bool | dict | list):
        raise ValueError(f"config key '{key}' must be a number or a string")
    convert = action.type or str
    try:
        return convert(value) if convert is not Path else Path(str(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config key '{key}': {exc}") from exc


def require(args: argparse.Namespace, *dests: str) -> None:
    """Flags that must come from the command line or the config file."""
    missing = [f"--{d.replace('_', '-')}" for d in dests if getattr(args, d) is None]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (a flag or a key in --config)")


def byte_size(text: str | int) -> int:
    """A byte count: ``262144``, ``"256KiB"``, ``"96 MiB"``, ``"1GiB"`` (KB/MB/GB are powers of 1000)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match and match.group(2).lower()
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 262144, 256KiB, 96MiB)")
    return int(match.group(1)) * _SIZE_UNITS[unit]

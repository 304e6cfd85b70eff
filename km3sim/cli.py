"""The ``km3sim`` command line.

The sub-commands live in :mod:`km3sim.commands`, one module per group; this module
builds the parser from them and turns :class:`~km3sim.errors.Km3simError` into a
one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from km3sim import __version__
from km3sim.commands import command_modules
from km3sim.errors import Km3simError

log = logging.getLogger("km3sim")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="km3sim", description="Monte Carlo simulation for KM3NeT-like neutrino telescopes")
    p.add_argument("--version", action="version", version=f"km3sim {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more output")
    sub = p.add_subparsers(dest="command", required=True)
    for module in command_modules():
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Km3simError as exc:
        print(f"km3sim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("km3sim: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``--ca --cert --key`` options every kvdb command shares, and what a server says about them.

Servers (``kvdb store``, ``kvdb pd``) take the files from their flags or TOML keys only; client
commands (put/get/..., txn, admin, bench) default to ``KVDB_CA``/``KVDB_CERT``/``KVDB_KEY``, so
``export`` once and every command speaks TLS. Either way the three files are checked before
anything is started or dialled: a typo is a one-line usage error, not a handshake that fails later.
"""

from __future__ import annotations

import argparse
import logging
import os

from kvdb.net.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsFiles


def add_tls_flags(parser: argparse.ArgumentParser, from_env: bool) -> None:
    """Adds ``--ca --cert --key`` (dests tls_ca, tls_cert, tls_key: ``key`` is a KV command's
    argument); with ``from_env`` they default to the environment variables, as a client's should
    (a server's files are its own configuration)."""
    for flag, env, what in (("--ca", ENV_CA, "the cluster CA's certificate (PEM): peers must present "
                                             "certificates it signed"),
                            ("--cert", ENV_CERT, "this process's certificate (PEM), signed by the CA"),
                            ("--key", ENV_KEY, "the private key of --cert (PEM)")):
        default = (os.environ.get(env) or None) if from_env else None
        suffix = f" (default ${env})" if from_env else ""
        parser.add_argument(flag, dest=f"tls_{flag[2:]}", default=default, metavar="FILE",
                            help=f"TLS: {what}; --ca, --cert and --key go together{suffix}")


def tls_from_args(args: argparse.Namespace) -> TlsFiles | None:
    """The checked files of ``add_tls_flags``'s options, or None (plaintext); ValueError otherwise."""
    tls = TlsFiles.from_options(args.tls_ca, args.tls_cert, args.tls_key)
    if tls is not None:
        tls.check()
    return tls


def forget_tls_env() -> None:
    """For a command that starts its own plaintext cluster (``kvdb bench compare``, ``profile``,
    ``failover``): the user's KVDB_* variables are for another cluster, and its clients (and the
    client processes it spawns, which inherit the environment) must dial this one plaintext."""
    for name in (ENV_CA, ENV_CERT, ENV_KEY):
        os.environ.pop(name, None)


def log_tls_mode(log: logging.Logger, tls: TlsFiles | None, listen: str) -> None:
    """The start-up line that says whether this node is protected (docs/security.md)."""
    if tls is not None:
        log.info("mutual TLS on (CA %s): peers and clients need certificates from it", tls.ca)
    else:
        log.warning("running WITHOUT TLS: anyone who can reach %s can read, write and administer this "
                    "cluster (see docs/security.md)", listen)

"""Deterministic interaction tests of the Raft core, after etcd raft's ``rafttest`` package.

``env`` holds the nodes and the message queues, ``commands`` the language of the testdata files,
``fmt`` how values are printed, ``datadriven`` the file format. Scenarios live in ``testdata/``.
"""

from .commands import Interpreter
from .datadriven import Script

__all__ = ["Interpreter", "Script"]

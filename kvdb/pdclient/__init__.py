"""The placement driver's client, shared by stores, the client library, the CLI and the bench.

It lives under ``kvdb`` (the server of PD is ``placement/``, which may import ``kvdb``, never the
reverse): ``kvdb.pdclient.client.PdClient``.
"""

"""Listen and advertise addresses of a server process (a store or a PD member).

A process binds its ``--listen`` address but is known to the rest of the cluster by its
advertise address: the one a store registers with PD and PD members use for each other. They
differ when a process listens on a wildcard host (all interfaces) or behind address
translation. A wildcard is never an address others can dial, so listening on one without
saying what to advertise is refused before anything binds or is written.
"""

from __future__ import annotations

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def split_host_port(address: str, flag: str) -> tuple[str, int]:
    """``"10.0.0.1:20160"`` -> ("10.0.0.1", 20160); ValueError naming ``flag`` if it is not HOST:PORT."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{flag}: '{address}' is not HOST:PORT")
    return host, int(port)


def _advertise_parts(advertise: str) -> tuple[str, int]:
    """HOST:PORT, or a bare HOST (``10.0.0.5``, ``[fd00::5]``): port 0, the one bound."""
    if ":" not in advertise or (advertise.startswith("[") and advertise.endswith("]")):
        return advertise, 0
    return split_host_port(advertise, "--advertise-address")


def check_addresses(listen: str, advertise: str) -> None:
    """Refuse a wildcard listen host without an advertise address, and an advertise address that
    is not HOST:PORT or is itself a wildcard (``advertise`` "" means: none given)."""
    host, _ = split_host_port(listen, "--listen")
    if not advertise:
        if host in WILDCARD_HOSTS:
            raise ValueError(f"--listen {listen} is a wildcard address that other nodes cannot dial; "
                             "give --advertise-address HOST:PORT (the address they should use)")
        return
    ad_host, _ = _advertise_parts(advertise)
    if ad_host in WILDCARD_HOSTS:
        raise ValueError(f"--advertise-address {advertise} must name a host others can dial, not a wildcard")


def advertised(listen: str, advertise: str, bound_port: int) -> str:
    """The address others use: ``advertise`` (default: ``listen``), port 0 or none meaning the bound port."""
    host, port = _advertise_parts(advertise) if advertise else split_host_port(listen, "--listen")
    return f"{host}:{port or bound_port}"


def check_member_address(member_id: int, members: dict[int, str], listen: str, advertise: str) -> None:
    """A PD member advertises exactly its own entry of ``--initial-members``: the others dial it
    there, so a mismatch would leave it unreachable, or name another member's machine."""
    check_addresses(listen, advertise)
    _, listen_port = split_host_port(listen, "--listen")
    address = advertised(listen, advertise, listen_port)
    entry = members.get(member_id)
    if entry is not None and address != entry:
        given = "--advertise-address" if advertise else "--listen (no --advertise-address)"
        raise ValueError(f"member {member_id} advertises {address} ({given}) but --initial-members names it "
                         f"{entry}; they must match")


def on_listen_host(listen: str, port: int) -> str:
    """HOST:PORT of a process's other listener (Raft, KV): the host of ``listen``, ``port`` (0: any)."""
    host, _ = split_host_port(listen, "--listen")
    return f"{host}:{port}"


def check_listener_ports(listen: str, ports: dict[str, int]) -> None:
    """``ports`` (flag -> port; 0: ephemeral) are TCP ports, distinct from each other and from
    ``--listen``'s: two listeners on one host and port would fail only once the process starts."""
    _, listen_port = split_host_port(listen, "--listen")
    taken = {listen_port: "--listen"} if listen_port else {}
    for flag, port in ports.items():
        if not 0 <= port < 65536:
            raise ValueError(f"{flag} {port} is not a TCP port (0-65535; 0: any free one)")
        if port and port in taken:
            raise ValueError(f"{flag} {port} is also {taken[port]}'s port")
        if port:
            taken[port] = flag


def check_metrics_listen(address: str) -> None:
    """``--metrics-listen`` is HOST:PORT (a wildcard host is fine: Prometheus dials it) or empty."""
    if address:
        split_host_port(address, "--metrics-listen")

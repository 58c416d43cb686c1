"""Bind a Serve replica's inter-deployment gRPC server to its node's address, not every interface.

Ray Serve 2.60 starts that server on `[::]:0` (`ray/serve/_private/replica.py`,
`_on_initialized`) and offers no setting for it. Other replicas reach it at the node's address,
which is loopback for the local head (`--node-ip-address=127.0.0.1`) and the pod's IP in a
cluster, so binding that address alone changes nothing for them and closes it to everyone else.
Called from each deployment's constructor, which Serve runs before `_on_initialized`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_WILDCARD = "[::]:"


def node_address(node_ip: str, address: str) -> str:
    """`address` with Ray's wildcard host replaced by `node_ip` (bracketed if IPv6)."""
    if not address.startswith(_WILDCARD):
        return address
    host = f"[{node_ip}]" if ":" in node_ip else node_ip
    return f"{host}:{address.removeprefix(_WILDCARD)}"


def bind_to_node_ip() -> None:
    """Make this replica's inter-deployment gRPC server listen on the node's address only."""
    import ray  # noqa: PLC0415
    from ray.serve._private import replica  # noqa: PLC0415

    module: Any = replica  # Ray's private module: no typed exports
    add_port: Callable[[Any, str], int] = module.add_port_to_grpc_server
    if getattr(add_port, "binds_node_ip", False):
        return
    node_ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]

    def add_port_on_node(server: Any, address: str) -> int:
        return add_port(server, node_address(node_ip, address))

    add_port_on_node.binds_node_ip = True  # type: ignore[attr-defined]
    module.add_port_to_grpc_server = add_port_on_node

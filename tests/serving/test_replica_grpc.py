"""Serve replicas' inter-deployment gRPC server: Ray's wildcard bind becomes the node's address."""

from __future__ import annotations

from serving.replica_grpc import node_address


def test_the_wildcard_becomes_the_node_address_and_nothing_else_changes() -> None:
    assert node_address("127.0.0.1", "[::]:0") == "127.0.0.1:0"
    assert node_address("10.1.2.3", "[::]:50051") == "10.1.2.3:50051"
    assert node_address("fd00::5", "[::]:0") == "[fd00::5]:0"
    assert node_address("127.0.0.1", "10.0.0.1:7000") == "10.0.0.1:7000"

"""Lifeboat as several processes on one machine: `lifeboat cluster` (make cluster)."""

from lifeboat.cluster.local import ClusterPorts, LocalCluster
from lifeboat.cluster.processes import Role, RoleFailed

__all__ = ["ClusterPorts", "LocalCluster", "Role", "RoleFailed"]

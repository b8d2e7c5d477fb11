"""Several Heron nodes as one server: the session registry and routing bus (docs/cluster.md)."""

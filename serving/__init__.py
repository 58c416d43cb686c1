"""Driftline serving: a Ray Serve graph per model version behind one KServe-protocol ingress."""

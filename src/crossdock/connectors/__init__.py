"""Adapters at the edges: channels, nodes, carriers, feeds and reference data."""

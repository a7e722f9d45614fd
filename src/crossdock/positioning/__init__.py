"""Positioning: target stock per node and rebalancing plans. Computational: data in, decisions out;
it never touches the database (services/transfers.py reads the data and writes the transfers)."""

"""Use cases: the one write path for stock and order state, and the read models beside it."""

"""Benchmark scenarios behind `crossdock bench NAME`: figures printed and written as JSON."""

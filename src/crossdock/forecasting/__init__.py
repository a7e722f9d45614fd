"""Demand forecasting: M5 data, models and their accuracy (RMSSE / WRMSSE).

Computational only: data in, numbers out; nothing here touches the database.
"""

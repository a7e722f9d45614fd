"""Storage: schema migrations, the unit of work and the executors for SQLite and PostgreSQL."""

"""Alembic migrations of the two public tables; `controller.clients.migrate` runs them."""

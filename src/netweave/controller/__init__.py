"""The controller: a Neutron v2.0-compatible REST API over a SQL store (FastAPI + SQLAlchemy)."""

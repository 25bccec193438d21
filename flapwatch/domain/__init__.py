"""Clinical logic in plain Python: no Flask, no SQLAlchemy (DESIGN.md §4)."""

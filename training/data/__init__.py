"""Data sources turned into the canonical tables (``docs/CONTRACTS.md`` section 1).

Entry point: :func:`training.data.sources.load_source`.
"""

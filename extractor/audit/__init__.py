"""The quality audit for auditors: checks from rules/checks.toml run on the ledger (views built by
extractor.batch.ledger, the one module that talks to duckdb), figures with confidence intervals,
trends across runs, drill-down samples, and reports (tables, JSON, CSV/Parquet, one self-contained HTML).

- catalogue.py: loads and validates the check catalogue;
- report.py: builds the audit figures (a plain dict, the JSON document) and drill-down samples;
- html.py: the HTML report (inline SVG charts, every figure also in a table).
"""

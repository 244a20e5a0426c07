"""The batch runtime: runs over dossier trees. Planning and incremental runs (runner), isolated worker
processes, the result cache, the Dask cluster, the duckdb ledger, progress, ledger rebuild."""

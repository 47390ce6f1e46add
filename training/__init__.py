"""The training side: interaction logs -> matrices -> models -> versioned artifacts.

Data flow, one module each: `readers/` (CSV, Parquet, SQL, MovieLens) -> `interaction_log`
(columnar log with string ids) -> `dataset` (weighted user x item matrix) -> `splits` ->
`als` (implicit) with `autotune` / `tune` -> `evaluation` (metrics) -> `artifacts` (version folder).
"""

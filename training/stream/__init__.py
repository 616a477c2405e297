"""Out-of-core training input: user-partitioned Parquet shards prepared by DuckDB, read through tf.data."""

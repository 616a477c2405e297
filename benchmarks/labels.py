"""The display names of the models the quality benchmark compares (tables and figures)."""

LABELS = {
    "popularity": "popularity",
    "tfrs_quickstart": "seed code (TFRS quick-start)",
    "tfrs_tutorial": "TFRS tutorial",
    "ease": "EASE",
    "als": "ALS (implicit)",
    "svd": "truncated SVD (scikit-learn)",
    "lightfm": "LightFM (WARP, item features)",
    "item_knn": "item-kNN (cosine)",
    "project": "project (run_pipeline)",
}

"""The fixed vocabularies and column lists of the MovieLens layouts (:mod:`training.data.movielens_formats`):
the 100K genre columns, the 1M occupation codes, the canonical columns the readers produce."""

GENRES_100K = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
OCCUPATIONS_1M = {
    0: "other",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}
NO_GENRES = "(no genres listed)"
ITEM_COLUMNS = ["item_id", "title", "genres", "year"]
USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip_prefix"]
INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "weight"]

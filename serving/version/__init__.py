"""A published version, from its folder to the served :class:`~serving.model.LoadedModel`.

``files`` (what a version folder may hold, sha256 of each file), ``verify``
(the name, the manifest, the query inputs), ``operating_point`` (the index the
manifest describes), ``tables`` (items, users, seen lists), ``warmup`` and
``user_vectors`` (the query tower run at load), ``loader`` (:func:`load_version`,
the order of the steps), ``loader_thread`` (loading beside a served version),
``holder`` and ``watcher`` (the served version and its hot swap), ``describe``
(``GET /v1/model``)."""

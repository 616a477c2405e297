"""The artifact contract both halves share (docs/CONTRACTS.md section 3): the ``LATEST`` file and
version names (:mod:`artifact.latest`), the manifest (:mod:`artifact.manifest`) and file digests
(:mod:`artifact.checksums`). It imports neither ``training`` nor ``serving``."""

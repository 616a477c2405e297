"""ALS for implicit feedback (Hu, Koren, Volinsky 2008) through the optional
``implicit`` package. Known to work here: implicit 0.7.2 and 0.7.3 (numpy 2.4,
scipy 1.17, Python 3.11); 0.6.x-0.7.1 fail with numpy 2 (``numpy.__config__
.get_info`` is gone), so: ``pip install 'implicit>=0.7.2,<0.8'``. Absent (or too old) package ->
:func:`available` is False and the quality benchmark reports ALS as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def available() -> tuple[bool, str]:
    """(True, version) when ``implicit`` imports, else (False, why)."""
    try:
        import implicit
    except Exception as exc:  # ImportError or a broken binary wheel
        return False, f"implicit not importable ({exc.__class__.__name__}: {exc}); pip install 'implicit>=0.7.2,<0.8'"
    version = getattr(implicit, "__version__", "0")
    try:
        major, minor, patch = (int(x) for x in version.split(".")[:3])
    except ValueError:
        return True, version
    if (major, minor, patch) < (0, 7, 2):
        # implicit <= 0.7.1 calls numpy.__config__.get_info, gone in numpy 2: fit() raises
        return False, f"implicit {version} does not work with numpy 2; pip install 'implicit>=0.7.2,<0.8'"
    return True, version


@dataclass
class Als:
    user_factors: np.ndarray  # users x factors
    item_factors: np.ndarray  # items x factors

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T


def fit_als(
    user_rows: np.ndarray,
    item_rows: np.ndarray,
    num_users: int,
    num_items: int,
    *,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int = 42,
) -> Als:
    """Binary interactions -> ALS factors (CPU, conjugate-gradient solver)."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # threadpoolctl ships no type hints

    data = np.ones(len(user_rows), dtype=np.float32)
    user_items = sp.csr_matrix((data, (user_rows, item_rows)), shape=(num_users, num_items))
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    # implicit parallelises itself; a multi-threaded BLAS underneath only fights it.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            calculate_training_loss=False,
        )
        model.fit(user_items, show_progress=False)
    return Als(
        user_factors=np.asarray(model.user_factors, dtype=np.float32),
        item_factors=np.asarray(model.item_factors, dtype=np.float32),
    )

"""central_hessian: the one finite-difference Hessian of the track and shower fits."""

import numpy as np

from km3sim.reco.numerics import central_hessian


def _quadratic(x, a, b):
    return 0.5 * x @ a @ x + b @ x


def test_exact_on_a_quadratic_form():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(5, 5))
    a = m @ m.T + 5 * np.eye(5)  # symmetric positive definite
    b = rng.normal(size=5)
    h = central_hessian(_quadratic, rng.normal(size=5), np.full(5, 1e-2), a, b)
    # central differences are exact for a quadratic up to rounding (~eps·|f|/h²)
    np.testing.assert_allclose(h, a, atol=1e-6)


def test_curvature_of_a_non_quadratic_function():
    f = lambda x: np.exp(x[0]) * np.cos(x[1])  # noqa: E731
    x = np.array([0.3, 0.7])
    exact = np.exp(0.3) * np.array([[np.cos(0.7), -np.sin(0.7)], [-np.sin(0.7), -np.cos(0.7)]])
    h = central_hessian(f, x, np.array([1e-3, 1e-3]))
    # truncation error O(h²) ~ 1e-6 relative
    np.testing.assert_allclose(h, exact, rtol=1e-5, atol=1e-7)

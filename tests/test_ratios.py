"""Ratio formulas against hand computations, and properties over shapes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_er import ratios

LENET = [(784, 300), (300, 100), (100, 10)]
LENET_N = [784 * 300, 300 * 100, 100 * 10]
CNN = [(3, 3, 3, 16), (3, 3, 16, 32), (512, 10)]
CNN_N = [3 * 3 * 3 * 16, 3 * 3 * 16 * 32, 512 * 10]


def overall(shapes, densities):
    sizes = np.array([np.prod(s) for s in shapes], dtype=float)
    return float((sizes * np.array(densities)).sum() / sizes.sum())


def test_uniform_is_constant():
    assert ratios.uniform(LENET, 0.3) == [0.3, 0.3, 0.3]


def test_erk_lenet_by_hand_caps_the_small_last_layer():
    # raw_l = sum(dims) / prod(dims); the 100x10 layer gets eps*raw > 1.
    budget = 0.1 * sum(LENET_N)
    eps = budget / (784 + 300 + 300 + 100 + 100 + 10)
    assert eps * 110 / 1000 > 1
    eps = (budget - 1000) / (784 + 300 + 300 + 100)
    expected = [eps * 1084 / 235200, eps * 400 / 30000, 1.0]
    np.testing.assert_allclose(ratios.erk(LENET, 0.1), expected, rtol=1e-12)


def test_erk_conv_uses_all_kernel_dims():
    # conv raw = (kh + kw + c_in + c_out) / (kh kw c_in c_out)
    raw = [(3 + 3 + 3 + 16) / 432, (3 + 3 + 16 + 32) / 4608, 522 / 5120]
    eps = 0.2 * sum(CNN_N) / sum(r * n for r, n in zip(raw, CNN_N))
    assert all(eps * r <= 1 for r in raw)  # no capping at this density
    np.testing.assert_allclose(
        ratios.erk(CNN, 0.2), [eps * r for r in raw], rtol=1e-12
    )


def test_er_ignores_kernel_size():
    raw = [(3 + 16) / (3 * 16), (16 + 32) / (16 * 32), 522 / 5120]
    result = ratios.er(CNN, 0.3)
    uncapped = [i for i, p in enumerate(result) if p < 1]
    ratio = [result[i] / raw[i] for i in uncapped]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    assert overall(CNN, result) == pytest.approx(0.3, abs=1e-9)


def test_balanced_lenet_by_hand():
    # x = d * N / L nonzeros per layer; the 1000-entry layer is smaller than
    # x, so it is dense and the remainder is split over two layers.
    budget = 0.1 * sum(LENET_N)
    assert budget / 3 > 1000
    x = (budget - 1000) / 2
    expected = [x / 235200, x / 30000, 1.0]
    np.testing.assert_allclose(
        ratios.balanced(LENET, 0.1), expected, rtol=1e-12
    )


def test_pyramidal_lenet_by_hand():
    result = ratios.pyramidal(LENET, 0.1)
    p1 = result[0]
    np.testing.assert_allclose(result, [p1, p1**2, p1**3], rtol=1e-12)
    polynomial = sum(n * p1 ** (i + 1) for i, n in enumerate(LENET_N))
    assert polynomial == pytest.approx(0.1 * sum(LENET_N), rel=1e-9)
    # Cross-check the root with numpy.roots on the same polynomial.
    coeffs = [LENET_N[2], LENET_N[1], LENET_N[0], -0.1 * sum(LENET_N)]
    roots = [r.real for r in np.roots(coeffs) if abs(r.imag) < 1e-12]
    assert min(abs(r - p1) for r in roots) < 1e-10


def test_full_density_is_dense_everywhere():
    for name in ratios.METHODS:
        assert ratios.get(name)(CNN, 1.0) == pytest.approx([1.0] * 3)


def test_erk_power_zero_is_uniform():
    np.testing.assert_allclose(ratios.erk(CNN, 0.3, power=0.0), [0.3] * 3)


def test_get_rejects_unknown_name():
    with pytest.raises(ValueError, match="Unknown ratio 'magic'"):
        ratios.get("magic")


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "x", None])
def test_density_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match=r"density must be"):
        ratios.uniform(LENET, bad)


dims = st.integers(min_value=1, max_value=64)
dense_shape = st.tuples(dims, dims)
conv_shape = st.tuples(
    st.integers(1, 5), st.integers(1, 5), st.integers(1, 32),
    st.integers(1, 32),
)
shape_lists = st.lists(st.one_of(dense_shape, conv_shape), min_size=1,
                       max_size=7)
densities = st.floats(min_value=1e-3, max_value=1.0)


@settings(max_examples=150, deadline=None)
@given(shapes=shape_lists, density=densities,
       name=st.sampled_from(sorted(ratios.METHODS)))
def test_every_method_hits_the_overall_density(shapes, density, name):
    result = ratios.get(name)(shapes, density)
    assert len(result) == len(shapes)
    assert all(0 < p <= 1 for p in result)
    assert overall(shapes, result) == pytest.approx(density, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(shapes=shape_lists, density=densities)
def test_balanced_gives_equal_nonzeros_to_uncapped_layers(shapes, density):
    result = ratios.balanced(shapes, density)
    nonzeros = [p * np.prod(s) for p, s in zip(result, shapes) if p < 1]
    if nonzeros:
        np.testing.assert_allclose(nonzeros, nonzeros[0], rtol=1e-9)
        # A capped layer is one that could not take that many nonzeros.
        capped = [np.prod(s) for p, s in zip(result, shapes) if p == 1]
        assert all(n <= nonzeros[0] * (1 + 1e-9) for n in capped)


@settings(max_examples=100, deadline=None)
@given(shapes=shape_lists, density=st.floats(1e-3, 0.999))
def test_pyramidal_is_a_geometric_sequence(shapes, density):
    result = ratios.pyramidal(shapes, density)
    p1 = result[0]
    assert 0 < p1 < 1
    for layer, p in enumerate(result, start=1):
        assert p == pytest.approx(p1**layer, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(shapes=shape_lists, density=densities,
       power=st.sampled_from([0.5, 1.0, 2.0]))
def test_erk_is_proportional_to_raw_score_below_the_cap(shapes, density,
                                                       power):
    result = ratios.erk(shapes, density, power=power)
    raw = [(sum(s) / math.prod(s)) ** power for s in shapes]
    free = [(p, r) for p, r in zip(result, raw) if p < 1]
    if free:
        eps = free[0][0] / free[0][1]
        for p, r in free:
            assert p == pytest.approx(eps * r, rel=1e-9)
        # Capped layers are those whose scaled score reached 1.
        for p, r in zip(result, raw):
            if p == 1:
                assert eps * r >= 1 - 1e-9

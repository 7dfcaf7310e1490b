"""keras_er.research.theory against values by hand from the paper's bounds."""

import doctest
import math

import numpy as np
import pytest

from keras_er.research import theory


def test_overparameterization_factor_by_hand():
    # 1 / log(1 / (1 - p)): p = 1/2 -> 1/log 2; p = 1 - 1/e -> exactly 1.
    assert theory.overparameterization_factor(0.5) == pytest.approx(
        1 / math.log(2)
    )
    assert theory.overparameterization_factor(1 - math.exp(-1)) == (
        pytest.approx(1.0)
    )
    # p = 0.1: 1 / log(10/9) = 9.4912...
    assert theory.overparameterization_factor(0.1) == pytest.approx(
        1 / (math.log(10) - math.log(9))
    )
    # About 1/p at high sparsity (the paper's remark after Theorem 2.2).
    assert theory.overparameterization_factor(0.001) == pytest.approx(
        1000, rel=1e-3
    )
    values = theory.overparameterization_factor([0.5, 0.1])
    assert isinstance(values, np.ndarray)
    np.testing.assert_allclose(
        values, [1 / math.log(2), 1 / math.log(10 / 9)]
    )


@pytest.mark.parametrize("p", [0, 1, -0.1, 1.5, float("nan"), "0.5", True])
def test_factor_rejects_densities_outside_the_open_interval(p):
    with pytest.raises(ValueError, match="p must"):
        theory.overparameterization_factor(p)
    with pytest.raises(ValueError):
        theory.overparameterization_factor([0.5, p])


def test_theorem_2_1_by_hand():
    # Target 784 -> 128 -> 10 (dense), source density 0.1, delta 1e-3.
    # q1 = ceil(log(2 * 1280 / 1e-3) / log(1 / 0.9))
    #    = ceil(14.7555... / 0.1053605...) = ceil(140.05) = 141.
    # q0 = ceil(log(2 * 100352 * 141 / 1e-3) / log(1 / 0.9))
    #    = ceil(24.0661... / 0.1053605...) = ceil(228.42) = 229.
    q1 = math.ceil(math.log(2 * 128 * 10 / 1e-3) / math.log(1 / 0.9))
    q0 = math.ceil(math.log(2 * 784 * 128 * q1 / 1e-3) / math.log(1 / 0.9))
    assert (q0, q1) == (229, 141)
    result = theory.single_hidden_layer_source_widths(784, 128, 10, 0.1)
    assert result.copies == (q0, q1, 1)
    assert result.widths == (q0 * 784, q1 * 128, 10)


def test_theorem_2_1_layer_densities_and_sparse_target():
    # p1 = 0.5, p2 = 0.2, target with m_T1 = 50, m_T2 = 8 nonzeros.
    # q1 = ceil(log(2 * 8 / 0.01) / log(1 / 0.8)) = ceil(33.06) = 34
    # q0 = ceil(log(2 * 50 * 34 / 0.01) / log(2)) = ceil(18.38) = 19
    result = theory.single_hidden_layer_source_widths(
        10, 20, 4, (0.5, 0.2), delta=0.01, target_nonzeros=(50, 8)
    )
    q1 = math.ceil(math.log(1600) / math.log(1.25))
    q0 = math.ceil(math.log(2 * 50 * q1 / 0.01) / math.log(2))
    assert (q0, q1) == (19, 34)
    assert result == ((19, 34, 1), (190, 680, 4))


def test_theorem_2_2_deep_target_by_hand():
    # L = 3: q_l = ceil(log(3 m_{l+1} q_{l+1} / delta) / log(1/(1-p))).
    p, delta = 0.3, 0.05
    rate = math.log(1 / 0.7)
    q2 = math.ceil(math.log(3 * 6 * 2 * 1 / delta) / rate)
    q1 = math.ceil(math.log(3 * 8 * 6 * q2 / delta) / rate)
    q0 = math.ceil(math.log(3 * 5 * 8 * q1 / delta) / rate)
    result = theory.required_source_widths((5, 8, 6, 2), p, delta)
    assert result.copies == (q0, q1, q2, 1)
    assert result.widths == (5 * q0, 8 * q1, 6 * q2, 2)
    # L = 2 is Theorem 2.1.
    assert theory.required_source_widths((7, 9, 3), 0.2) == (
        theory.single_hidden_layer_source_widths(7, 9, 3, 0.2)
    )


def test_at_least_one_copy_when_dense_enough():
    # p close to 1: the bound is below 1, but a layer needs the neuron once.
    result = theory.required_source_widths((2, 3, 1), 1 - 1e-12, 0.5)
    assert result.copies == (1, 1, 1)


def test_theorem_2_3_lower_bound_by_hand():
    # 1/log(1/(1-p)) * log(1 / (1 - (1 - delta)^(1/d))).
    p, d, delta = 0.2, 10, 0.1
    expected = math.log(1 / (1 - 0.9 ** (1 / 10))) / math.log(1 / 0.8)
    assert theory.lower_bound_width(p, d, delta) == pytest.approx(expected)
    # d = 1: log(1/delta) / log(1/(1-p)).
    assert theory.lower_bound_width(0.5, 1, 0.25) == pytest.approx(2.0)


def test_figure2_numbers():
    data = theory.figure2_data()
    assert set(data) == {"sparsity", "density", "factor", "copies", "width"}
    # Paper: n_T1 = 128, n_T2 = 10, 1 - delta = 0.999.
    for s, width, copies in zip(data["sparsity"], data["width"],
                                data["copies"]):
        bound = math.log(2 * 1280 / 0.001) / math.log(1 / s)
        assert copies == math.ceil(bound)
        assert width == 128 * copies
    # "increases moderately up to sparsity 0.9 and drastically after 0.95".
    width = dict(zip(np.round(data["sparsity"], 3), data["width"]))
    assert width[0.5] == 22 * 128 and width[0.9] == 141 * 128
    assert width[0.99] / width[0.9] > 10
    assert np.all(np.diff(data["width"]) > 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_widths=(5,), density=0.5), "at least one layer"),
        (dict(target_widths=(5, 0, 2), density=0.5), "positive int"),
        (dict(target_widths=(5, 4, 2), density=(0.5,)), "depth 2"),
        (dict(target_widths=(5, 4, 2), density=1.0), "density"),
        (dict(target_widths=(5, 4, 2), density=0.5, delta=0), "delta"),
        (dict(target_widths=(5, 4, 2), density=0.5,
              target_nonzeros=(21, 8)), "at most"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        theory.required_source_widths(**kwargs)


def test_docstring_examples():
    failures, _ = doctest.testmod(
        theory, extraglobs=vars(theory), optionflags=doctest.ELLIPSIS
    )
    assert failures == 0

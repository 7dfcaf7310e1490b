"""Mask drawing: counts, Bernoulli statistics, flow preservation, seeds."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_er import masks

shapes = st.one_of(
    st.tuples(st.integers(1, 60), st.integers(1, 60)),
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 16),
              st.integers(1, 16)),
)
densities = st.floats(min_value=0.005, max_value=1.0)
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=100, deadline=None)
@given(shape=shapes, density=densities, seed=seeds)
def test_exact_sampling_keeps_exactly_round_p_n(shape, density, seed):
    rng = np.random.default_rng(seed)
    mask = masks.draw_mask(shape, density, rng, "exact")
    size = math.prod(shape)
    assert mask.shape == shape
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert mask.sum() == max(1, round(density * size))


@settings(max_examples=100, deadline=None)
@given(shape=shapes, density=densities, seed=seeds)
def test_bernoulli_sampling_within_four_sigma(shape, density, seed):
    rng = np.random.default_rng(seed)
    mask = masks.draw_mask(shape, density, rng, "bernoulli")
    size = math.prod(shape)
    sigma = math.sqrt(size * density * (1 - density))
    # The count is an integer: one entry of slack where sigma is tiny
    # (9 entries at density 0.996 miss one with probability 3.5 %).
    assert abs(mask.sum() - density * size) <= 4 * sigma + 1


def test_bernoulli_entries_are_independent_across_the_kernel():
    # Rows and columns get the same expected density: no structure.
    mask = masks.draw_mask((400, 400), 0.3, np.random.default_rng(1))
    assert abs(mask.mean(axis=0).mean() - 0.3) < 0.01
    assert mask.mean(axis=0).std() < 0.05 and mask.mean(axis=1).std() < 0.05


def _assert_flow(mask):
    dead_inputs, dead_outputs = masks.dead_units(mask)
    assert len(dead_inputs) == 0 and len(dead_outputs) == 0


@settings(max_examples=80, deadline=None)
@given(shape=shapes, density=st.floats(0.001, 0.3), seed=seeds,
       method=st.sampled_from(["addition", "rejection"]),
       sampling=st.sampled_from(["bernoulli", "exact"]))
def test_flow_preservation_leaves_no_dead_unit(shape, density, seed, method,
                                              sampling):
    rng = np.random.default_rng(seed)
    drawn = masks.draw_mask(shape, density, rng, sampling)
    repaired, added = masks.preserve_flow(drawn, density, rng, method)
    _assert_flow(repaired)
    assert added == int(repaired.sum() - drawn.sum())
    if method == "addition":
        # Addition only switches entries on.
        assert np.all(repaired >= drawn)


def test_addition_adds_one_edge_per_dead_unit_at_most():
    rng = np.random.default_rng(0)
    drawn = masks.draw_mask((300, 10), 0.01, rng)
    dead_inputs, dead_outputs = masks.dead_units(drawn)
    repaired, added = masks.preserve_flow(drawn, 0.01, rng, "addition")
    assert 0 < added <= len(dead_inputs) + len(dead_outputs)
    _assert_flow(repaired)


def test_conv_flow_counts_a_filter_alive_if_any_position_is_kept():
    mask = np.zeros((3, 3, 2, 2), np.float32)
    mask[0, 0, 0, 0] = 1  # input 0 -> output 0 through one tap
    mask[2, 1, 1, 1] = 1  # input 1 -> output 1
    dead_inputs, dead_outputs = masks.dead_units(mask)
    assert len(dead_inputs) == 0 and len(dead_outputs) == 0
    mask[2, 1, 1, 1] = 0
    dead_inputs, dead_outputs = masks.dead_units(mask)
    assert list(dead_inputs) == [1] and list(dead_outputs) == [1]


def test_flow_none_returns_the_mask_unchanged():
    rng = np.random.default_rng(0)
    drawn = masks.draw_mask((50, 5), 0.01, rng)
    same, added = masks.preserve_flow(drawn, 0.01, rng, None)
    assert added == 0 and np.array_equal(same, drawn)


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_same_seed_same_masks_other_seed_other_masks(seed):
    shapes_, dens = [(30, 20), (3, 3, 4, 8)], [0.3, 0.5]
    first, _ = masks.draw_masks(shapes_, dens, seed=seed)
    again, _ = masks.draw_masks(shapes_, dens, seed=seed)
    other, _ = masks.draw_masks(shapes_, dens, seed=seed + 1)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, other))


def test_bad_modes_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sampling must be one of"):
        masks.draw_mask((3, 3), 0.5, rng, "poisson")
    with pytest.raises(ValueError, match="flow must be one of"):
        masks.preserve_flow(np.ones((3, 3)), 0.5, rng, "magic")
    with pytest.raises(ValueError, match="density must be in"):
        masks.draw_mask((3, 3), 1.5, rng)

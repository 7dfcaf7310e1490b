"""keras_er.algorithms: each function against a plain-numpy reference.

Small random tensors with deliberate ties; runs on every backend (CI core
subset).
"""

import numpy as np
import pytest
from keras import ops

from keras_er import algorithms
from keras_er.algorithms import edge_popup, magnitude, rigl, soft_threshold
from tests.conftest import to_numpy


def tied_values(shape, seed, levels=7):
    """Random signed values from a few magnitudes, so ties are common."""
    rng = np.random.default_rng(seed)
    magnitudes = rng.integers(0, levels, size=shape).astype("float32") / 4
    signs = rng.choice(np.array([-1.0, 1.0], "float32"), size=shape)
    return magnitudes * signs


def random_mask(shape, density, seed):
    return (np.random.default_rng(seed).random(shape) < density).astype(
        "float32"
    )


def reference_top_k(scores, k, eligible):
    """Top-k by a stable sort (largest first, lowest index among ties)."""
    scores = np.asarray(scores, "float64").ravel()
    eligible = np.asarray(eligible, bool).ravel()
    index = np.flatnonzero(eligible)
    # lexsort: last key is primary; -score descending, then index.
    order = index[np.lexsort((index, -scores[index]))]
    keep = np.zeros(scores.size, bool)
    keep[order[:k]] = True
    return keep


# ---------------------------------------------------------------- magnitude


@pytest.mark.parametrize("seed", range(4))
def test_top_k_mask_matches_stable_sort_with_ties(seed):
    scores = tied_values((6, 7), seed)
    eligible = random_mask((6, 7), 0.7, seed + 10)
    for k in (0, 1, 5, 13, int(eligible.sum()), 60):
        got = to_numpy(magnitude.top_k_mask(scores, k, eligible=eligible))
        want = reference_top_k(scores, min(k, int(eligible.sum())), eligible)
        np.testing.assert_array_equal(got.ravel(), want)


def test_radix_select_on_special_values_and_the_compiled_length():
    from keras_er.algorithms import _select

    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-30, -1e-30, 3.0e38,
                        -3.0e38, 1.0, -1.0], "float32")
    # 2**18 + 7 entries: the compiled path on JAX; -0.0 ties with 0.0.
    # (No denormals: XLA on CPU may flush them to zero.)
    for n in (50, 2**18 + 7):
        scores = rng.choice(special, size=n)
        scores[: n // 3] = rng.standard_normal(n // 3)
        eligible = rng.random(n) < 0.6
        for k in (1, 17, n // 5, int(eligible.sum()), n):
            got = to_numpy(_select.first_k_largest(
                ops.convert_to_tensor(scores), ops.convert_to_tensor(eligible),
                k))
            want = reference_top_k(np.where(scores == 0, 0.0, scores),
                                   min(k, int(eligible.sum())), eligible)
            np.testing.assert_array_equal(got, want)


def test_seeded_ties_are_uniform_and_exact_in_count():
    from keras_er.algorithms import _select

    # 30 entries above the boundary, 100 tied at it, 3 of them wanted.
    scores = np.concatenate([np.full(30, 2.0), np.ones(100), np.zeros(70)])
    scores = ops.convert_to_tensor(scores.astype("float32"))
    eligible = ops.convert_to_tensor(np.ones(200, bool))
    hits = np.zeros(200)
    for seed in range(120):
        got = to_numpy(_select.first_k_largest(scores, eligible, 33, seed))
        assert got.sum() == 33 and got[:30].all() and not got[130:].any()
        hits += got
    # Each tied entry: chosen with probability 3/100, 3.6 times in 120 on
    # average (P(never) = 2.6 %); a fixed order would choose 3 entries 120
    # times each.
    tied = hits[30:130]
    assert tied.max() <= 15 and (tied > 0).sum() >= 80


def test_allocate_largest_remainder_ties_to_earlier_layer():
    np.testing.assert_array_equal(magnitude.allocate(3, [2, 2, 2, 2]),
                                  [1, 1, 1, 0])
    np.testing.assert_array_equal(magnitude.allocate(7, [10, 0, 4]), [5, 0, 2])
    with pytest.raises(ValueError, match="keep"):
        magnitude.allocate(5, [1, 2])


@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("seed", range(3))
def test_magnitude_masks_against_numpy(scope, seed):
    shapes = [(5, 6), (3, 3, 2, 4), (6, 2)]
    kernels = [tied_values(s, seed * 10 + i) for i, s in enumerate(shapes)]
    masks = [random_mask(s, 0.6, seed * 10 + i + 5)
             for i, s in enumerate(shapes)]
    # Masked entries are large: they must never come back.
    kernels = [np.where(m > 0, k, 100.0).astype("float32")
               for k, m in zip(kernels, masks)]
    counts = [int(m.sum()) for m in masks]
    keep = int(0.45 * sum(counts))
    new = [to_numpy(m) for m in
           magnitude.magnitude_masks(kernels, masks, keep, scope)]
    if scope == "global":
        flat = np.concatenate([np.abs(k).ravel() for k in kernels])
        elig = np.concatenate([m.ravel() for m in masks])
        want = np.split(reference_top_k(flat, keep, elig),
                        np.cumsum([k.size for k in kernels])[:-1])
    else:
        shares = magnitude.allocate(keep, counts)
        want = [reference_top_k(np.abs(k), int(s), m)
                for k, m, s in zip(kernels, masks, shares)]
    assert sum(int(m.sum()) for m in new) == keep  # Density exactly.
    for got, expected, old in zip(new, want, masks):
        assert got.dtype == bool
        np.testing.assert_array_equal(got.ravel(), expected)
        assert not np.any(got & (old == 0))  # Subset of the old mask.


def test_magnitude_masks_clip_keep_and_check_scope():
    kernel = np.arange(1, 7, dtype="float32").reshape(2, 3)
    mask = np.array([[1, 0, 1], [1, 1, 0]], "float32")
    (full,) = magnitude.magnitude_masks([kernel], [mask], 100)
    np.testing.assert_array_equal(to_numpy(full), mask > 0)
    (none,) = magnitude.magnitude_masks([kernel], [mask], -3)
    assert not to_numpy(none).any()
    with pytest.raises(ValueError, match="scope"):
        magnitude.magnitude_masks([kernel], [mask], 2, "per-layer")


def test_magnitude_masks_keep_nan_weights():
    kernel = np.array([[np.nan, 0.5, 2.0, 0.1]], "float32")
    mask = np.ones_like(kernel)
    (new,) = magnitude.magnitude_masks([kernel], [mask], 2)
    np.testing.assert_array_equal(to_numpy(new), [[True, False, True, False]])


# -------------------------------------------------------------------- rigl


def reference_rewire(kernel, mask, scores, n_drop, n_grow):
    """RiGL step with lowest-index tie-breaking, by stable sorts."""
    active = mask.ravel() > 0
    drop = reference_top_k(-np.abs(kernel), n_drop, active)
    after = active & ~drop
    grow = reference_top_k(scores, n_grow, ~after)
    new = after | grow
    grown = new & ~active
    dropped = active & ~new
    new_kernel = np.where(new & ~grown, kernel.ravel(), 0)
    return new, new_kernel, grown, dropped


@pytest.mark.parametrize("seed", range(4))
def test_rewire_matches_numpy_without_seed(seed):
    shape = (7, 6)
    mask = random_mask(shape, 0.4, seed)
    kernel = tied_values(shape, seed + 1) * mask
    scores = np.abs(tied_values(shape, seed + 2))
    nnz = int(mask.sum())
    for n_drop, n_grow in ((0, 0), (3, 3), (nnz // 2, nnz // 2), (4, 1)):
        got = [to_numpy(x).ravel() for x in rigl.rewire(
            kernel, mask, scores, n_drop, n_grow, seed=None)]
        want = reference_rewire(kernel, mask, scores, n_drop, n_grow)
        np.testing.assert_array_equal(got[0] > 0, want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_array_equal(got[3], want[3])
        assert got[0].sum() == nnz - n_drop + n_grow
        assert not np.any(got[1][got[2]])  # Grown entries start at zero.


def test_rewire_regrown_entry_keeps_its_value():
    kernel = np.array([[0.5, -0.1, 0.0, 0.0]], "float32")
    mask = np.array([[1, 1, 0, 0]], "float32")
    scores = np.array([[0.0, 9.0, 1.0, 0.5]], "float32")
    new_mask, new_kernel, grown, dropped = rigl.rewire(
        kernel, mask, scores, 1, 1, seed=0)
    np.testing.assert_array_equal(to_numpy(new_mask), mask)
    np.testing.assert_array_equal(to_numpy(new_kernel), kernel)
    assert not to_numpy(grown).any() and not to_numpy(dropped).any()


def test_rewire_seeded_ties_are_random_and_reproducible():
    kernel = np.zeros((1, 40), "float32")
    kernel[0, :20] = 1.0  # 20 active weights of equal magnitude.
    mask = (kernel != 0).astype("float32")
    scores = np.zeros((1, 40), "float32")  # All inactive entries tie too.
    chosen = set()
    for seed in range(6):
        first = [to_numpy(x) for x in rigl.rewire(kernel, mask, scores, 5, 5,
                                                   seed=seed)]
        again = [to_numpy(x) for x in rigl.rewire(kernel, mask, scores, 5, 5,
                                                   seed=seed)]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
        assert first[0].sum() == 20
        # Dropped (and not grown back) entries come from the active ones.
        assert 0 < first[3].sum() <= 5 and not np.any(first[3] & (mask == 0))
        chosen.add(tuple(np.flatnonzero(first[3])))
    assert len(chosen) > 1


def test_rewire_properties_with_random_growth():
    shape = (8, 9)
    mask = random_mask(shape, 0.3, 3)
    kernel = np.random.default_rng(4).normal(size=shape).astype("float32")
    kernel *= mask
    nnz = int(mask.sum())
    new_mask, new_kernel, grown, dropped = [
        to_numpy(x) for x in rigl.rewire(kernel, mask, None, 6, 6, seed=7)
    ]
    assert new_mask.sum() == nnz  # Density exactly kept.
    assert grown.sum() <= 6 and dropped.sum() == grown.sum()
    assert not np.any(new_kernel[grown]) and not np.any(new_kernel[new_mask == 0])
    # Dropped entries are among the 6 smallest active magnitudes.
    sixth = np.sort(np.abs(kernel)[mask > 0])[5]
    assert np.all(np.abs(kernel)[dropped] <= sixth)
    # Surviving old entries keep their values.
    kept = (mask > 0) & (new_mask > 0)
    np.testing.assert_array_equal(new_kernel[kept], kernel[kept])


def test_rewire_bad_counts():
    kernel = np.ones((2, 2), "float32")
    mask = np.array([[1, 0], [0, 0]], "float32")
    with pytest.raises(ValueError, match="n_drop"):
        rigl.rewire(kernel, mask, kernel, 2, 0)
    with pytest.raises(ValueError, match="n_grow"):
        rigl.rewire(kernel, mask, kernel, 0, 4)
    with pytest.raises(ValueError, match="seed"):
        rigl.rewire(kernel, mask, None, 1, 1, seed=None)


# -------------------------------------------------------------- edge-popup


@pytest.mark.parametrize("seed", range(3))
def test_subnetwork_mask_is_top_k_inside_the_er_mask(seed):
    shape = (6, 5)
    scores = np.random.default_rng(seed).normal(size=shape).astype("float32")
    mask = random_mask(shape, 0.5, seed + 3)
    nnz = int(mask.sum())
    for k in (0, 1, nnz // 2, nnz, nnz + 4):
        got = to_numpy(edge_popup.subnetwork_mask(scores, mask, k))
        want = reference_top_k(np.abs(scores), min(k, nnz), mask)
        np.testing.assert_array_equal(got.ravel() > 0, want)
    assert algorithms.subnetwork_mask is edge_popup.subnetwork_mask


def test_edge_popup_scores_layer_reexports_subnetwork_mask():
    from keras_er.layers import edge_popup_scores

    assert edge_popup_scores.subnetwork_mask is edge_popup.subnetwork_mask


# ---------------------------------------------------------- soft threshold


def test_soft_threshold_effective_kernel_survivors_and_fold():
    kernel = np.array([[0.5, -0.2, 0.05], [-1.0, 0.0, 0.3]], "float32")
    mask = np.array([[1, 1, 1], [0, 1, 1]], "float32")
    tau = np.float32(0.25)
    effective = to_numpy(soft_threshold.effective_kernel(kernel, mask, tau))
    want = mask * np.sign(kernel) * np.maximum(np.abs(kernel) - tau, 0)
    np.testing.assert_allclose(effective, want, rtol=0, atol=0)
    alive = to_numpy(soft_threshold.survivors(kernel, mask, tau))
    np.testing.assert_array_equal(alive, (mask > 0) & (np.abs(kernel) > tau))
    new_mask, new_kernel = [
        to_numpy(x) for x in soft_threshold.fold_kernel(kernel, mask, tau)
    ]
    np.testing.assert_array_equal(new_mask, alive.astype("float32"))
    np.testing.assert_array_equal(new_kernel * new_mask, effective)


@pytest.mark.parametrize("budget", [0, 1, 7, 20, 33, 1000])
def test_threshold_shift_keeps_exactly_the_budget(budget):
    rng = np.random.default_rng(budget)
    shapes = [(6, 5), (4, 4)]
    kernels = [rng.normal(size=s).astype("float32") for s in shapes]
    masks = [random_mask(s, 0.7, i) for i, s in enumerate(shapes)]
    taus = [0.1, 0.4]
    delta = soft_threshold.threshold_shift(kernels, masks, taus, budget)
    margins = np.concatenate([
        (np.abs(k) - t)[(m > 0) & (k != 0)]
        for k, m, t in zip(kernels, masks, taus)
    ])
    candidates = margins.size
    if budget >= candidates:
        assert delta == float("-inf")
        return
    assert int(np.sum(margins > delta)) == budget
    alive = sum(
        int(np.sum((m > 0) & (np.abs(k) > np.float32(max(t + delta, 0)))))
        for k, m, t in zip(kernels, masks, taus)
    )
    assert alive == budget

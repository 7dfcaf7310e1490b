"""Every bad argument of a public entry point fails early, naming itself.

One parametrized test per entry point. Each case is ``(call, exception
type, regex)``: ``call(ctx)`` makes the bad call (``ctx`` holds a small dense
model, its sparsified copy and a batch), and the regex checks that the message
names the argument (and, mostly, what it must be). Every case here used to
pass silently, fail later (at build, at the first update), or fail with a
message that did not name the argument.
"""

import numpy as np
import pytest

import keras
import keras_er
from keras_er import callbacks as cb
from keras_er import masks, ratios
from keras_er.callbacks import schedules

MODEL_MUST = r"model must be a keras\.Model"
DENSITY_MUST = r"density must be a number in \(0, 1\]"
SEED_MUST = r"seed must be an int >= 0"


@pytest.fixture(scope="module")
def ctx():
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(6, name="d0"),
            keras.layers.Dense(4, name="d1"),
        ]
    )
    sparse = keras_er.sparsify(model, "erk", 0.5, seed=0)
    x = np.zeros((4, 8), "float32")
    y = np.zeros((4,), "int32")
    return {"model": model, "sparse": sparse, "x": x, "y": y}


def _cases(*rows):
    """``pytest.param`` per row ``(id, call, exception, regex)``."""
    return [pytest.param(call, exc, regex, id=id_) for id_, call, exc, regex in rows]


def _check(ctx, call, exc, regex):
    with pytest.raises(exc, match=regex):
        call(ctx)


# --- sparsify ---------------------------------------------------------------

SPARSIFY = _cases(
    ("layers=int", lambda c: keras_er.sparsify(c["model"], layers=3, seed=0),
     ValueError, r"layers must be None .*got 3"),
    ("layers=dict", lambda c: keras_er.sparsify(
        c["model"], layers={"d0": 1}, seed=0), ValueError, r"layers must be"),
    ("dense_layers=int", lambda c: keras_er.sparsify(
        c["model"], dense_layers=5, seed=0),
     ValueError, r"dense_layers must be a layer name .*got 5"),
    ("model=None", lambda c: keras_er.sparsify(None, seed=0),
     ValueError, MODEL_MUST),
    ("model=str", lambda c: keras_er.sparsify("model.keras", seed=0),
     ValueError, MODEL_MUST),
    ("seed<0", lambda c: keras_er.sparsify(c["model"], seed=-3),
     ValueError, SEED_MUST + r".*got -3"),
    ("seed=bool", lambda c: keras_er.sparsify(c["model"], seed=True),
     ValueError, SEED_MUST + r".*bool"),
    ("density=bool positional", lambda c: keras_er.sparsify(
        c["model"], "pyramidal", True), ValueError, DENSITY_MUST + ".*bool"),
    ("density=str", lambda c: keras_er.sparsify(c["model"], "erk", "0.5"),
     ValueError, DENSITY_MUST + ".*str"),
    ("ratio dict value=bool", lambda c: keras_er.sparsify(
        c["model"], {"d0": True, "d1": 0.5}, seed=0),
     ValueError, r"density of layer 'd0' must be a number"),
    ("ratio dict value=str", lambda c: keras_er.sparsify(
        c["model"], {"d0": "0.5", "d1": 0.5}, seed=0),
     ValueError, r"density of layer 'd0' must be a number"),
    ("unknown option", lambda c: keras_er.sparsify(
        c["model"], "erk", 0.1, seed=0, sede=1),
     TypeError, r"'sede'.*accepts \['power'\]"),
    ("option the ratio lacks", lambda c: keras_er.sparsify(
        c["model"], "uniform", 0.1, seed=0, power=2),
     TypeError, r"Unknown keyword argument 'power'"),
    ("option with ratio dict", lambda c: keras_er.sparsify(
        c["model"], {"d0": 0.5, "d1": 0.5}, seed=0, power=2),
     TypeError, r"Unknown keyword argument 'power'"),
    ("power=bool", lambda c: keras_er.sparsify(
        c["model"], "erk", 0.1, seed=0, power=True),
     ValueError, r"power must be a finite number"),
    ("redraw=str", lambda c: keras_er.sparsify(
        c["sparse"], seed=0, redraw="no"),
     ValueError, r"redraw must be True or False"),
    ("in_place=str", lambda c: keras_er.sparsify(
        c["model"], seed=0, in_place="yes"),
     ValueError, r"in_place must be True or False"),
)


@pytest.mark.parametrize("call, exc, regex", SPARSIFY)
def test_sparsify(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


# --- layer_densities and keras_er.ratios ------------------------------------

LAYER_DENSITIES = _cases(
    ("model=None", lambda c: keras_er.layer_densities(None, "erk", 0.1),
     ValueError, MODEL_MUST),
    ("density=bool", lambda c: keras_er.layer_densities(
        c["model"], "erk", True), ValueError, DENSITY_MUST),
    ("layers=int", lambda c: keras_er.layer_densities(
        c["model"], "erk", 0.1, layers=3), ValueError, r"layers must be"),
    ("dense_layers=int", lambda c: keras_er.layer_densities(
        c["model"], "erk", 0.1, dense_layers=5),
     ValueError, r"dense_layers must be"),
    ("unknown option", lambda c: keras_er.layer_densities(
        c["model"], "erk", 0.1, powr=2),
     TypeError, r"'powr'.*accepts \['power'\]"),
)


@pytest.mark.parametrize("call, exc, regex", LAYER_DENSITIES)
def test_layer_densities(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


RATIOS = _cases(
    ("shapes=int", lambda c: ratios.uniform(3, 0.1),
     ValueError, r"shapes must be a list of kernel shapes"),
    ("shape=int", lambda c: ratios.er([3, 4], 0.5),
     ValueError, r"shapes must be a list of kernel shapes.*entry 3"),
    ("shape dim=float", lambda c: ratios.er([(1.5, 4)], 0.5),
     ValueError, r"shapes must be .*\(1\.5, 4\)"),
    ("density=bool", lambda c: ratios.erk([(3, 4)], True),
     ValueError, DENSITY_MUST),
    ("power=bool", lambda c: ratios.erk([(3, 4)], 0.5, power=True),
     ValueError, r"power must be a finite number"),
    ("power=str", lambda c: ratios.erk([(3, 4)], 0.5, power="2"),
     ValueError, r"power must be a finite number"),
    ("check_density str", lambda c: ratios.check_density("0.5"),
     ValueError, DENSITY_MUST + ".*str"),
    ("check_density bool", lambda c: ratios.check_density(True, "target"),
     ValueError, r"target must be a number"),
    ("from_model model=None", lambda c: ratios.from_model(None),
     ValueError, MODEL_MUST),
    ("from_model like=str", lambda c: ratios.from_model(
        c["sparse"], like="fresh"), ValueError, r"like must be a keras\.Model"),
)


@pytest.mark.parametrize("call, exc, regex", RATIOS)
def test_ratios(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


# --- keras_er.masks ---------------------------------------------------------

RNG = np.random.default_rng(0)

MASKS = _cases(
    ("draw_mask density=bool", lambda c: masks.draw_mask((3, 4), True, RNG),
     ValueError, DENSITY_MUST),
    ("draw_mask rng=int", lambda c: masks.draw_mask((3, 4), 0.5, 0),
     ValueError, r"rng must be a numpy\.random\.Generator"),
    ("draw_mask shape<0", lambda c: masks.draw_mask((3, -4), 0.5, RNG),
     ValueError, r"shape must be a tuple of positive ints"),
    ("draw_mask shape=int", lambda c: masks.draw_mask(3, 0.5, RNG),
     ValueError, r"shape must be a tuple of positive ints"),
    ("draw_masks seed<0", lambda c: masks.draw_masks(
        [(3, 4)], [0.5], seed=-1), ValueError, SEED_MUST),
    ("draw_masks seed=None", lambda c: masks.draw_masks(
        [(3, 4)], [0.5], seed=None), ValueError, SEED_MUST),
    ("draw_masks seed=float", lambda c: masks.draw_masks(
        [(3, 4)], [0.5], seed=1.5), ValueError, SEED_MUST),
    ("draw_masks densities=float", lambda c: masks.draw_masks(
        [(3, 4)], 0.5, seed=0), ValueError, r"densities must be a list"),
    ("draw_masks shapes=int", lambda c: masks.draw_masks(3, [0.5], seed=0),
     ValueError, r"shapes must be a list"),
    ("layer_rng seed<0", lambda c: masks.layer_rng(-1, 0),
     ValueError, SEED_MUST),
    ("preserve_flow rng=None", lambda c: masks.preserve_flow(
        np.zeros((3, 4)), 0.5, None), ValueError, r"rng must be"),
)


@pytest.mark.parametrize("call, exc, regex", MASKS)
def test_masks(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


# --- ER layer constructors --------------------------------------------------

# Every ER layer with its required positional arguments and the name of its
# mask seed argument (`seed` is Keras' dropout seed in MHA and the RNNs).
ER_LAYERS = [
    (keras_er.ERDense, (4,), "seed"),
    (keras_er.ERConv1D, (4, 3), "seed"),
    (keras_er.ERConv2D, (4, 3), "seed"),
    (keras_er.ERConv3D, (4, 3), "seed"),
    (keras_er.ERConv1DTranspose, (4, 3), "seed"),
    (keras_er.ERConv2DTranspose, (4, 3), "seed"),
    (keras_er.ERConv3DTranspose, (4, 3), "seed"),
    (keras_er.ERDepthwiseConv1D, (3,), "seed"),
    (keras_er.ERDepthwiseConv2D, (3,), "seed"),
    (keras_er.EREinsumDense, ("ab,bc->ac", 4), "seed"),
    (keras_er.EREmbedding, (10, 4), "seed"),
    (keras_er.ERSeparableConv1D, (4, 3), "seed"),
    (keras_er.ERSeparableConv2D, (4, 3), "seed"),
    (keras_er.ERMultiHeadAttention, (2, 4), "mask_seed"),
    (keras_er.ERSimpleRNN, (4,), "mask_seed"),
    (keras_er.ERLSTM, (4,), "mask_seed"),
    (keras_er.ERGRU, (4,), "mask_seed"),
]


def _layer_cases():
    rows = []
    for cls, args, seed_key in ER_LAYERS:
        name = cls.__name__
        rows += [
            (f"{name} {seed_key}<0",
             lambda c, cls=cls, args=args, key=seed_key: cls(
                 *args, density=0.5, **{key: -3}),
             ValueError, f"{seed_key} must be an int >= 0 or None, got -3"),
            (f"{name} density=bool",
             lambda c, cls=cls, args=args: cls(*args, density=True),
             ValueError, DENSITY_MUST + ".*bool"),
        ]
    rows += [
        ("ERDense seed=bool", lambda c: keras_er.ERDense(4, seed=True),
         ValueError, SEED_MUST),
        ("ERDense density=str", lambda c: keras_er.ERDense(4, density="0.5"),
         ValueError, DENSITY_MUST),
        ("ERDense reparameterization=str", lambda c: keras_er.ERDense(
            4, reparameterization="str"),
         ValueError, r"reparameterization must be None, a "
         r"KernelReparameterization"),
        ("ERSeparableConv2D role density=bool",
         lambda c: keras_er.ERSeparableConv2D(
             4, 3, density={"depthwise": True}),
         ValueError, r"density of role 'depthwise' must be a number"),
    ]
    return _cases(*rows)


@pytest.mark.parametrize("call, exc, regex", _layer_cases())
def test_er_layer_constructors(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


# --- get_masks / set_masks, strip, summary, export, prune_at_init -----------

MASK_IO = _cases(
    ("get_masks model=None", lambda c: keras_er.get_masks(None),
     ValueError, MODEL_MUST),
    ("set_masks model=None", lambda c: keras_er.set_masks(None, {}),
     ValueError, MODEL_MUST),
    ("set_masks masks=list", lambda c: keras_er.set_masks(
        c["sparse"], [np.ones((8, 6))]),
     ValueError, r"masks must be a dict \{layer_name: 0/1 array\}"),
    ("set_masks masks=None", lambda c: keras_er.set_masks(c["sparse"], None),
     ValueError, r"masks must be a dict"),
)


@pytest.mark.parametrize("call, exc, regex", MASK_IO)
def test_get_set_masks(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


STRIP_SUMMARY_EXPORT = _cases(
    ("strip model=None", lambda c: keras_er.strip(None),
     ValueError, MODEL_MUST),
    ("strip in_place=str", lambda c: keras_er.strip(
        c["sparse"], in_place="no"),
     ValueError, r"in_place must be True or False"),
    ("summary model=None", lambda c: keras_er.summary(None, print_fn=None),
     ValueError, MODEL_MUST),
    ("summary print_fn=int", lambda c: keras_er.summary(
        c["sparse"], print_fn=3), ValueError, r"print_fn must be a callable"),
    ("export model=None", lambda c: keras_er.export(
        None, "unused.keras", format="keras"), ValueError, MODEL_MUST),
    ("export path=None", lambda c: keras_er.export(
        c["sparse"], None, format="keras"), ValueError, r"path must be a "),
)


@pytest.mark.parametrize("call, exc, regex", STRIP_SUMMARY_EXPORT)
def test_strip_summary_export(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


PRUNE_AT_INIT = _cases(
    ("model=None", lambda c: keras_er.prune_at_init(None, "synflow", 0.5),
     ValueError, MODEL_MUST),
    ("density=bool", lambda c: keras_er.prune_at_init(
        c["model"], "synflow", True), ValueError, DENSITY_MUST),
    ("unknown option", lambda c: keras_er.prune_at_init(
        c["model"], "synflow", 0.5, roundz=3),
     TypeError, r"'roundz'.*accepts \[.*'rounds'"),
    ("per_layer<0", lambda c: keras_er.prune_at_init(
        c["model"], "synflow", 0.5, rounds=1, per_layer=-1),
     ValueError, r"per_layer must be an int >= 0"),
)


@pytest.mark.parametrize("call, exc, regex", PRUNE_AT_INIT)
def test_prune_at_init(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


# --- callbacks --------------------------------------------------------------

IMP = _cases(
    ("target_density=str", lambda c: cb.IMP("0.5"),
     ValueError, r"target_density must be a float"),
    ("prune_fraction=str", lambda c: cb.IMP(0.5, prune_fraction="0.2"),
     ValueError, r"prune_fraction must be a float"),
    ("verbose=str", lambda c: cb.IMP(0.5, verbose="x"),
     ValueError, r"verbose must be an int >= 0"),
    ("CyclicCosine initial_learning_rate=bool",
     lambda c: cb.CyclicCosine(True, 0.01, cycle_steps=10),
     ValueError, r"initial_learning_rate must be a finite number"),
    ("CyclicCosine initial_learning_rate=str",
     lambda c: cb.CyclicCosine("0.1", 0.01, cycle_steps=10),
     ValueError, r"initial_learning_rate must be a finite number"),
    ("CyclicCosine final_learning_rate=None",
     lambda c: cb.CyclicCosine(0.1, None, cycle_steps=10),
     ValueError, r"final_learning_rate must be a finite number"),
)


@pytest.mark.parametrize("call, exc, regex", IMP)
def test_imp(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


RIGL_DATA = r"data must be a batch tuple \(x, y\)"

RIGL = _cases(
    ("data=array", lambda c: cb.RiGL(data=c["x"]),
     ValueError, RIGL_DATA + r".*of shape \(4, 8\)"),
    ("data=tensor", lambda c: cb.RiGL(data=keras.ops.ones((4, 8))),
     ValueError, RIGL_DATA),
    ("data=[x, y]", lambda c: cb.RiGL(data=[c["x"], c["y"]]),
     ValueError, RIGL_DATA + r".*not a list \[x, y\]"),
    ("data=str", lambda c: cb.RiGL(data="train"), ValueError, RIGL_DATA),
    ("data=dict", lambda c: cb.RiGL(data={"x": c["x"]}),
     ValueError, RIGL_DATA),
    ("seed<0", lambda c: cb.RiGL(seed=-1, data=(c["x"], c["y"])),
     ValueError, SEED_MUST),
    ("layers=int", lambda c: cb.RiGL(layers=3, data=(c["x"], c["y"])),
     ValueError, r"layers must be None .*got 3"),
    ("loss=int", lambda c: cb.RiGL(loss=3, data=(c["x"], c["y"])),
     ValueError, r"loss must be None .*or a callable"),
    ("verbose=str", lambda c: cb.RiGL(verbose="x", data=(c["x"], c["y"])),
     ValueError, r"verbose must be an int >= 0"),
    ("SET seed<0", lambda c: cb.SET(seed=-1), ValueError, SEED_MUST),
    ("SET layers=int", lambda c: cb.SET(layers=5),
     ValueError, r"layers must be None"),
)


@pytest.mark.parametrize("call, exc, regex", RIGL)
def test_rigl_and_set(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


MAGNITUDE_PRUNING = _cases(
    ("verbose=str", lambda c: cb.MagnitudePruning(
        schedules.ConstantSparsity(0.5, 0), verbose="x"),
     ValueError, r"verbose must be an int >= 0"),
    ("ConstantSparsity target_sparsity=bool",
     lambda c: schedules.ConstantSparsity(True, 0),
     ValueError, r"target_sparsity must be a float in \[0, 1\), got True"),
    ("ConstantSparsity target_sparsity=str",
     lambda c: schedules.ConstantSparsity("0.5", 0),
     ValueError, r"target_sparsity must be a float"),
    ("PolynomialDecay power=bool",
     lambda c: schedules.PolynomialDecay(0.0, 0.9, 0, 10, power=True),
     ValueError, r"power must be a positive number"),
    ("PolynomialDecay power=str",
     lambda c: schedules.PolynomialDecay(0.0, 0.9, 0, 10, power="3"),
     ValueError, r"power must be a positive number"),
    ("PolynomialDecay power<0",
     lambda c: schedules.PolynomialDecay(0.0, 0.9, 0, 10, power=-1),
     ValueError, r"power must be a finite number > 0"),
    ("PolynomialDecay final<initial",
     lambda c: schedules.PolynomialDecay(0.9, 0.5, 0, 10),
     ValueError, r"final_sparsity \(0\.5\) must be >= initial_sparsity"),
)


@pytest.mark.parametrize("call, exc, regex", MAGNITUDE_PRUNING)
def test_magnitude_pruning(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


STR = _cases(
    ("s_init=str", lambda c: cb.STR(s_init="x"),
     ValueError, r"s_init must be a finite number"),
    ("s_init=bool", lambda c: cb.STR(s_init=True),
     ValueError, r"s_init must be a finite number"),
    ("s_init=None", lambda c: cb.STR(s_init=None),
     ValueError, r"s_init must be a finite number"),
    ("s_weight_decay=str", lambda c: cb.STR(s_weight_decay="x"),
     ValueError, r"s_weight_decay must be a finite number"),
    ("target_density=bool", lambda c: cb.STR(target_density=True),
     ValueError, r"target_density must be a number in \(0, 1\]"),
    ("verbose=str", lambda c: cb.STR(verbose="x"),
     ValueError, r"verbose must be an int >= 0"),
)


@pytest.mark.parametrize("call, exc, regex", STR)
def test_str(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)


EDGE_POPUP = _cases(
    ("target_density=bool", lambda c: cb.EdgePopup(True),
     ValueError, r"target_density must be a number in \(0, 1\]"),
    ("target_density dict value=bool", lambda c: cb.EdgePopup({"d0": True}),
     ValueError, r"target density of 'd0' must be a number"),
    ("verbose=str", lambda c: cb.EdgePopup(0.5, verbose="x"),
     ValueError, r"verbose must be an int >= 0"),
    ("prepare gain=bool", lambda c: cb.EdgePopup.prepare(
        c["sparse"], gain=True), ValueError, r"gain must be a finite number"),
    ("prepare gain=inf", lambda c: cb.EdgePopup.prepare(
        c["sparse"], gain=float("inf")),
     ValueError, r"gain must be a finite number"),
    ("prepare seed<0", lambda c: cb.EdgePopup.prepare(
        c["sparse"], seed=-1), ValueError, SEED_MUST),
    ("prepare model=None", lambda c: cb.EdgePopup.prepare(None),
     ValueError, MODEL_MUST),
)


@pytest.mark.parametrize("call, exc, regex", EDGE_POPUP)
def test_edge_popup(ctx, call, exc, regex):
    _check(ctx, call, exc, regex)

"""Mask mechanics of layers that own several kernels (private base class).

A `SeparableConv1D/2D` has a depthwise and a pointwise kernel, a
`MultiHeadAttention` four projections. keras_er masks each kernel on its
own: the ER version of such a layer holds one sublayer per kernel, an ER
layer (`ERDepthwiseConv1D/2D`, `ERConv1D/2D`, `EREinsumDense`) for every
masked *role* and the plain Keras layer for a role kept dense. Every masked
kernel is then an ordinary ER layer with one ``_kernel`` and one ``mask``,
which is what the ratio methods, `get_masks`, the callbacks and `strip` work
on. Its name is ``"<layer name>-<role>"``, e.g. ``"mha-query"``.
"""

import numpy as np

from keras_er import masks as masks_lib
from keras_er._checks import check_seed
from keras_er.layers.masked_kernel import StripFirstMixin
from keras_er.ratios import check_density

# Joins a layer name and a kernel role ("mha-query"). Not ".": the torch
# backend registers variables by path and forbids "." in parameter names;
# not "/", the path separator.
ROLE_SEPARATOR = "-"


def role_name(owner_name, role):
    """The name of the kernel ``role`` of layer ``owner_name``."""
    return f"{owner_name}{ROLE_SEPARATOR}{role}"


def role_seed(seed, index):
    """A 31-bit seed for the mask of role ``index`` from the layer's seed."""
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1)
    return int(state[0] % (2**31 - 1))


def check_role_reparameterizations(reparameterization):
    """``{role: config}`` of a layer with several kernels (None: empty)."""
    if reparameterization is not None and not isinstance(
        reparameterization, dict
    ):
        raise ValueError(
            "reparameterization must be None or a dict {role: config}; "
            "install one on a role with "
            "`layer.er_units()[i][1].set_reparameterization(...)`."
        )
    return dict(reparameterization or {})


class MaskedCompositeMixin(StripFirstMixin):
    """Per-role masks for a layer with several kernels.

    Subclasses put this mixin first in their bases, define ``ROLES`` (every
    possible role, in order), ``plain_kernels`` and ``er_units``, call
    ``_init_composite_options`` from ``__init__`` and create each sublayer
    with ``_make_unit`` in ``build``.
    """

    #: Config key of the mask seed (a layer that already has a ``seed``
    #: argument, like MultiHeadAttention's dropout seed, uses another).
    SEED_KEY = "seed"
    ROLES = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The mask options in the config (what `strip` removes), with the
        # seed under the class's own SEED_KEY.
        cls.ER_CONFIG_KEYS = (
            "density", cls.SEED_KEY, "sampling", "flow",
            "reparameterization", "mask_dtype",
        )

    def _init_composite_options(
        self, density, seed, sampling, flow, reparameterization=None,
        mask_dtype="bool",
    ):
        if isinstance(density, dict):
            unknown = sorted(set(density) - set(self.ROLES))
            if unknown:
                raise ValueError(
                    f"density names unknown roles {unknown}; the roles of "
                    f"{type(self).__name__} are {list(self.ROLES)}."
                )
            density = {
                role: check_density(value, f"density of role {role!r}")
                for role, value in density.items()
            }
        else:
            density = check_density(density)
        self.density = density
        self.mask_seed = check_seed(seed, self.SEED_KEY)
        self.sampling = masks_lib.check_sampling(sampling)
        self.flow = masks_lib.check_flow(flow)
        self.mask_dtype = masks_lib.check_mask_dtype(mask_dtype)
        self._role_reparameterizations = check_role_reparameterizations(
            reparameterization
        )
        # `keras_er.sparsify` hands each masked role its mask here.
        self._initial_masks = {}

    def masked_roles(self):
        """The roles that get an ER sublayer (the others stay plain)."""
        if isinstance(self.density, dict):
            return [role for role in self.ROLES if role in self.density]
        return list(self.ROLES)

    def _make_unit(self, role, er_class, plain_class, kwargs):
        """The sublayer of ``role``: ER when masked, plain Keras otherwise."""
        kwargs = dict(kwargs, name=role_name(self.name, role))
        if role not in self.masked_roles():
            return plain_class(**kwargs)
        density = (
            self.density[role] if isinstance(self.density, dict)
            else self.density
        )
        unit = er_class(
            density=density,
            seed=role_seed(self.mask_seed, self.ROLES.index(role)),
            sampling=self.sampling,
            flow=self.flow,
            mask_dtype=self.mask_dtype,
            reparameterization=self._role_reparameterizations.get(role),
            **kwargs,
        )
        if role in self._initial_masks:
            unit._initial_mask = self._initial_masks.pop(role)
        return unit

    def er_units(self):
        """``[(role, sublayer)]`` of the built layer, in ``ROLES`` order."""
        raise NotImplementedError

    @classmethod
    def plain_kernels(cls, layer):
        """The kernels of the plain Keras layer this class replaces (built).

        Returns:
            ``[(role, kernel variable, bias variable or None, unit axes,
            holder)]`` where ``holder`` is the layer that applies the kernel
            (a sublayer, or ``layer`` itself).
        """
        raise NotImplementedError

    def _composite_config(self):
        reparameterizations = dict(self._role_reparameterizations)
        if self.built:
            for role, unit in self.er_units():
                config = getattr(unit, "_mask_config", None)
                if config is not None:
                    reparameterizations[role] = config()["reparameterization"]
        reparameterizations = {
            role: value for role, value in reparameterizations.items()
            if value is not None
        }
        return {
            "density": dict(self.density) if isinstance(self.density, dict)
            else self.density,
            self.SEED_KEY: self.mask_seed,
            "sampling": self.sampling,
            "flow": self.flow,
            "mask_dtype": self.mask_dtype,
            "reparameterization": reparameterizations or None,
        }

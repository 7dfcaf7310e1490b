"""One backend-agnostic gradient call, for scores and rewiring.

Keras 3 has no public ``grad`` op, so this is the only place in keras_er that
branches on the backend: ``tf.GradientTape``, ``jax.grad`` or
``torch.autograd``. Callers express the function with ``keras.ops`` and map
model variables to the differentiated tensors with `keras.StatelessScope`,
so no model variable is ever written.
"""

import keras
import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")


def check_backend():
    """Raises NotImplementedError on a backend without gradients here."""
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise NotImplementedError(
            f"keras_er computes gradients on the {BACKENDS} backends, not "
            f"{backend!r}."
        )
    return backend


def gradients(loss_of, tensors, as_numpy=True):
    """Gradients of the scalar ``loss_of(tensors)`` w.r.t. ``tensors``.

    Args:
        loss_of: ``fn(list_of_tensors) -> scalar tensor``, written with
            ``keras.ops``.
        tensors: The backend tensors to differentiate with respect to.
        as_numpy: ``False`` returns backend tensors, left where they were
            computed (no host copy).

    Returns:
        A list of NumPy arrays (or tensors), one per tensor (zeros where the
        loss does not depend on it).

    Raises:
        NotImplementedError: On a backend other than TensorFlow, JAX, torch.

    Example:

    ```python
    x = keras.ops.convert_to_tensor([1.0, 2.0])
    gradients(lambda ts: keras.ops.sum(ts[0] ** 2), [x])  # [2., 4.]
    ```
    """
    backend = check_backend()
    tensors = list(tensors)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            for tensor in tensors:
                tape.watch(tensor)
            loss = loss_of(tensors)
        grads = tape.gradient(
            loss, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        # A lookup (Embedding) gives row gradients as IndexedSlices.
        grads = [tf.convert_to_tensor(g) for g in grads]
    elif backend == "jax":
        import jax

        grads = jax.grad(lambda ts: loss_of(list(ts)))(tuple(tensors))
    else:
        import torch

        leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
        with torch.enable_grad():
            loss = loss_of(leaves)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        grads = [
            torch.zeros_like(leaf) if g is None else g
            for leaf, g in zip(leaves, grads)
        ]
    if not as_numpy:
        return list(grads)
    return [np.asarray(keras.ops.convert_to_numpy(g)) for g in grads]

"""Compact on-disk encoding of ER masks and sparse kernels.

ER layers keep a float 0/1 ``mask`` with the kernel's shape, and a kernel that
is exactly zero outside it. Written as they are, a ``.keras`` (or
``.weights.h5``) file holds 32 bits per mask entry plus a kernel that is
mostly zeros. The ER layers' ``save_own_variables`` therefore write:

* the mask as a *packed mask*: one bit per entry (``numpy.packbits``) after a
  small header holding the shape, as a 1-D ``uint8`` array;
* the kernel as its *compact values*: the entries inside the mask, in C order,
  as a 1-D array of the kernel's dtype (only when the kernel is zero outside
  the mask, so that the encoding is lossless; otherwise the full kernel).

Each stays in its usual slot of the layer's store, so the number of stored
entries equals the number of layer variables, as Keras checks on load.
``load_own_variables`` recognizes both encodings and the plain ones written by
earlier keras_er versions (float masks, full kernels), so loading is unchanged
for users.

Packed mask layout (all little endian)::

    byte 0        format version (1)
    byte 1        rank r of the mask
    bytes 2..     r uint32 dimensions
    then          numpy.packbits of the flattened mask (big bit order)

Example:

```python
packed = pack_mask(mask)                 # uint8, about mask.size / 8 bytes
restored = unpack_mask(packed)           # float32 0/1, mask's shape
values = compact_kernel(kernel, mask)    # kernel[mask != 0], or None
kernel = expand_kernel(values, restored)
```
"""

import numpy as np

PACKED_MASK_VERSION = 1
_DIM_DTYPE = np.dtype("<u4")


def pack_mask(mask):
    """Encodes a 0/1 mask as one bit per entry, with its shape.

    Args:
        mask: Array-like of 0/1 (any numeric or bool dtype).

    Returns:
        A 1-D ``uint8`` array: header (version, rank, dimensions), then the
        packed bits.

    Raises:
        ValueError: If the mask holds values other than 0 and 1.

    Example:

    ```python
    pack_mask(np.eye(3))  # 14 header bytes + 2 bytes of bits
    ```
    """
    mask = np.asarray(mask)
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("A mask to pack must contain only 0 and 1.")
    if mask.ndim > 255:
        raise ValueError(f"Cannot pack a mask of rank {mask.ndim} (> 255).")
    header = np.concatenate([
        np.array([PACKED_MASK_VERSION, mask.ndim], dtype=np.uint8),
        np.asarray(mask.shape, dtype=_DIM_DTYPE).view(np.uint8),
    ])
    bits = np.packbits(mask.reshape(-1) != 0)
    return np.concatenate([header, bits])


def is_packed_mask(value):
    """Whether a stored value is a packed mask (rather than a float mask)."""
    value = np.asarray(value)
    # Masks are float variables: a stored uint8 vector can only be packed.
    return value.dtype == np.uint8 and value.ndim == 1


def unpack_mask(packed, dtype="float32"):
    """Decodes a packed mask.

    Args:
        packed: The 1-D ``uint8`` array written by `pack_mask`.
        dtype: NumPy dtype of the result.

    Returns:
        The 0/1 mask with its original shape.

    Raises:
        ValueError: If ``packed`` is not a valid packed mask.

    Example:

    ```python
    unpack_mask(pack_mask(np.eye(3)))  # == np.eye(3)
    ```
    """
    packed = np.asarray(packed)
    if not is_packed_mask(packed) or packed.size < 2:
        raise ValueError("Not a packed mask: expected a 1-D uint8 array.")
    version, rank = int(packed[0]), int(packed[1])
    if version != PACKED_MASK_VERSION:
        raise ValueError(
            f"Packed mask format version {version} is not supported (this "
            f"keras_er reads version {PACKED_MASK_VERSION}); upgrade keras_er."
        )
    start = 2 + rank * _DIM_DTYPE.itemsize
    if packed.size < start:
        raise ValueError("Packed mask truncated inside its header.")
    shape = tuple(int(d) for d in packed[2:start].view(_DIM_DTYPE))
    size = int(np.prod(shape, dtype=np.int64))
    bits = packed[start:]
    if bits.size != (size + 7) // 8:
        raise ValueError(
            f"Packed mask of shape {shape} needs {(size + 7) // 8} bytes of "
            f"bits, found {bits.size}."
        )
    mask = np.unpackbits(bits, count=size)
    return mask.reshape(shape).astype(dtype)


def compact_kernel(kernel, mask):
    """The kernel entries inside the mask, or None if that would lose data.

    Args:
        kernel: Kernel array.
        mask: 0/1 array of the same shape.

    Returns:
        ``kernel[mask != 0]`` (1-D, kernel dtype) when the kernel is zero
        outside the mask, else None.
    """
    kernel = np.asarray(kernel)
    inside = np.asarray(mask) != 0
    if kernel.shape != inside.shape or np.any(kernel[~inside] != 0):
        return None
    return kernel[inside]


def expand_kernel(values, mask):
    """Inverse of `compact_kernel`: scatters ``values`` into the mask.

    Args:
        values: 1-D array with one value per nonzero of ``mask``.
        mask: 0/1 array with the kernel's shape.

    Returns:
        The kernel, zero outside the mask, with the dtype of ``values``.

    Raises:
        ValueError: If the number of values differs from the mask's nonzeros.
    """
    values = np.asarray(values)
    inside = np.asarray(mask) != 0
    count = int(inside.sum())
    if values.ndim != 1 or values.size != count:
        raise ValueError(
            f"A compact kernel needs one value per mask entry ({count}), got "
            f"an array of shape {values.shape}."
        )
    kernel = np.zeros(inside.shape, dtype=values.dtype)
    kernel[inside] = values
    return kernel

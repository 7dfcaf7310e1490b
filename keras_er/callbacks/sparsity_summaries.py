"""`SparsitySummaries`: TensorBoard scalars of masks and pruning state.

The counterpart of tensorflow-model-optimization's ``PruningSummaries`` for
keras_er models. The event files are written by a small pure-Python writer
(the TFRecord framing and the few protobuf fields of ``tensorflow.Event``),
so it needs neither TensorFlow nor the ``tensorboard`` package and works the
same on every Keras backend; only viewing the logs needs TensorBoard.
"""

import itertools
import os
import socket
import struct
import time

import keras
import numpy as np
from keras import ops

from keras_er.layers.edge_popup_scores import EdgePopupScores
from keras_er.layers.soft_threshold import has_soft_threshold, threshold_value
from keras_er.mask_io import er_layers
from keras_er.model_walk import unit_name
from keras_er.summary import summary

#: Keys that keras_er's pruning callbacks write into the Keras logs, and the
#: TensorBoard tag each is logged under.
METHOD_LOG_TAGS = {
    "imp_cycle": "imp/cycle",
    "rigl_drop_fraction": "rigl/drop_fraction",
    "edge_popup_level": "edge_popup/level",
}


class SparsitySummaries(keras.callbacks.Callback):
    """Logs layer densities and pruning state to TensorBoard.

    Writes scalar summaries to ``<log_dir>/sparsity`` (a run of its own next
    to the ``train`` and ``validation`` runs of `keras.callbacks.TensorBoard`,
    which it complements: use both for loss curves and sparsity):

    * ``density/<layer>`` and ``density/overall``: the densities of the
      `keras_er.summary` table, i.e. of each ER layer's mask (kept entries
      over kernel entries), of each plain maskable layer's kernel (nonzero
      entries, e.g. a layer kept dense) and of all of them together.
    * With STR installed: ``str_threshold/<layer>``, the threshold the
      forward pass uses (``sigmoid(s)``, or the frozen threshold once
      `keras_er.callbacks.STR` has frozen it), and
      ``effective_density/<layer>`` and ``effective_density/overall``, the
      entries inside the mask whose magnitude exceeds the threshold (the
      mask itself only shrinks when STR folds at the end of training).
    * With edge-popup installed: ``effective_density/<layer>`` and
      ``effective_density/overall``, the size of the current top-k
      subnetwork.
    * From the Keras logs, when a pruning callback put them there:
      ``imp/cycle`` (`keras_er.callbacks.IMP`), ``rigl/drop_fraction``
      (`keras_er.callbacks.RiGL` / ``SET``) and ``edge_popup/level``
      (`keras_er.callbacks.EdgePopup`).

    Densities are measured when this callback runs, so put it after the
    pruning callbacks in the ``callbacks`` list to see the masks after their
    epoch-end pruning. The values from the Keras logs are read once every
    callback has run, whatever the order.

    The writer is pure Python (no TensorFlow or ``tensorboard`` import), so
    ``log_dir`` must be a local path.

    Args:
        log_dir: Directory of the TensorBoard logs; the events go to its
            ``sparsity`` subdirectory (created if missing).
        update_freq: ``"epoch"`` to log at the end of every epoch with the
            epoch index as step (like the ``epoch_*`` scalars of
            `keras.callbacks.TensorBoard`), or an int ``n`` (``"batch"`` is
            1) to log every ``n`` training batches and at every epoch end,
            with the optimizer's iteration count as step. Each record copies
            every mask to the host, so keep ``n`` in the hundreds for large
            models.

    Raises:
        ValueError: For an empty ``log_dir`` or a bad ``update_freq``; when
            training starts, for a model without ER layers.

    Example:

    ```python
    sparse = keras_er.sparsify(model, "balanced", density=0.5, seed=0)
    imp = keras_er.callbacks.IMP(target_density=0.1, epochs_per_cycle=5)
    sparse.fit(x, y, epochs=IMP.total_epochs(sparse, 0.1, 0.2, 5),
               callbacks=[imp, keras_er.callbacks.SparsitySummaries("logs")])
    # tensorboard --logdir logs
    ```
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(
                f"log_dir must be a non-empty path, got {log_dir!r}."
            )
        self.log_dir = os.fspath(log_dir)
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (
            isinstance(update_freq, bool)
            or not isinstance(update_freq, (int, np.integer))
            or update_freq < 1
        ):
            raise ValueError(
                f"update_freq must be 'epoch', 'batch' or a positive int, "
                f"got {update_freq!r}."
            )
        self.update_freq = (
            update_freq if update_freq == "epoch" else int(update_freq)
        )
        self._writer = None
        self._pending = None
        self._batches = 0

    @property
    def events_dir(self):
        """The directory the event files are written to."""
        return os.path.join(self.log_dir, "sparsity")

    # -- what is logged ----------------------------------------------------

    def scalars(self):
        """The scalars describing the model now, without the Keras logs.

        Returns:
            ``{tag: float}``, the tags listed in the class doc.

        Raises:
            ValueError: If the model has no ER layers.
        """
        reparameterized = [
            layer for layer in er_layers(self.model) if _reparameterized(layer)
        ]
        # The table of `keras_er.summary`: masks of ER layers, nonzeros of
        # plain ones, and the same total.
        rows = summary(self.model, print_fn=None)
        layers, total = rows[:-1], rows[-1]
        values = {f"density/{row['name']}": row["density"] for row in layers}
        values["density/overall"] = total["density"]
        if not reparameterized:
            return values
        effective = {row["name"]: row["density"] for row in layers}
        nonzeros = total["nonzeros"]
        for layer in reparameterized:
            size = int(np.prod(layer.mask.shape))
            kept = _count(ops.cast(layer.mask, "bool"))
            if has_soft_threshold(layer):
                tau = float(threshold_value(layer))
                values[f"str_threshold/{unit_name(layer)}"] = tau
                alive = _str_alive(layer)
            else:  # Edge-popup: the top-k subnetwork inside the mask.
                k = int(ops.convert_to_numpy(layer.edge_popup_k))
                alive = min(kept, k)
            effective[unit_name(layer)] = alive / size
            nonzeros -= kept - alive
        for name, density in effective.items():
            values[f"effective_density/{name}"] = density
        values["effective_density/overall"] = nonzeros / total["params"]
        return values

    # -- Keras hooks -------------------------------------------------------

    def on_train_begin(self, logs=None):
        er_layers(self.model)  # A clear error before the first epoch.
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._flush_pending()
        if self.update_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.update_freq == 0:
            self._record(self._iterations(), logs)

    def on_epoch_end(self, epoch, logs=None):
        step = epoch if self.update_freq == "epoch" else self._iterations()
        if self._pending is not None and self._pending[0] == step:
            # A batch record at this very step: the epoch record, with the
            # epoch's logs, replaces it rather than duplicating the step.
            self._pending = None
        self._flush_pending()
        self._record(step, logs)

    def on_train_end(self, logs=None):
        self._flush_pending()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- internals ---------------------------------------------------------

    def _record(self, step, logs):
        # Pruning callbacks listed after this one add their keys to the same
        # logs dict after this hook returns: keep a reference and read it at
        # the next hook, when every callback has run.
        self._pending = (step, self.scalars(), logs)

    def _flush_pending(self):
        if self._pending is None:
            return
        step, values, logs = self._pending
        self._pending = None
        for key, tag in METHOD_LOG_TAGS.items():
            if logs and key in logs:
                values[tag] = float(logs[key])
        if self._writer is None:
            self._writer = EventFileWriter(self.events_dir)
        self._writer.add_scalars(values, step)
        self._writer.flush()

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return self._batches
        return int(ops.convert_to_numpy(optimizer.iterations))

    def get_config(self):
        return {"log_dir": self.log_dir, "update_freq": self.update_freq}


def _count(condition):
    """Number of true entries, summed where the tensor lives."""
    return int(ops.convert_to_numpy(ops.sum(ops.cast(condition, "int32"))))


def _reparameterized(layer):
    """Whether the forward pass keeps fewer entries than the mask (STR, EP)."""
    return has_soft_threshold(layer) or isinstance(
        layer.reparameterization, EdgePopupScores
    )


def _str_alive(layer):
    """Entries of an STR layer inside the mask and above the threshold."""
    kernel = layer._kernel
    tau = layer.reparameterization.threshold(layer, kernel.dtype)
    return _count(
        ops.logical_and(
            ops.cast(layer.mask, "bool"), ops.greater(ops.abs(kernel), tau)
        )
    )


# -- a minimal TensorBoard event file writer -------------------------------
#
# An event file is a TFRecord file of serialized `tensorflow.Event` protos:
# each record is  uint64 length | uint32 masked crc32c(length) | data |
# uint32 masked crc32c(data). The protobuf wire format is written by hand for
# the few fields needed (Event.wall_time = 1, step = 2, file_version = 3,
# summary = 5; Summary.value = 1; Summary.Value.tag = 1, simple_value = 2).


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli) of ``data``, as TFRecord uses.

    Example:

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value):
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number, wire_type, payload):
    key = _varint((number << 3) | wire_type)
    if wire_type == 2:  # Length-delimited: bytes, strings, messages.
        return key + _varint(len(payload)) + payload
    return key + payload


def _event(step, summary=None, file_version=None, wall_time=None):
    """A serialized ``tensorflow.Event``."""
    data = _field(1, 1, struct.pack("<d", time.time() if wall_time is None
                                    else wall_time))
    # Negative steps use 10-byte two's complement, as protobuf's int64.
    data += _field(2, 0, _varint(int(step) & 0xFFFFFFFFFFFFFFFF))
    if file_version is not None:
        data += _field(3, 2, file_version.encode())
    if summary is not None:
        data += _field(5, 2, summary)
    return data


def _scalar_summary(values):
    """A serialized ``tensorflow.Summary`` of float32 ``simple_value``s."""
    return b"".join(
        _field(
            1, 2,
            _field(1, 2, str(tag).encode())
            + _field(2, 5, struct.pack("<f", float(value))),
        )
        for tag, value in values.items()
    )


class EventFileWriter:
    """Writes scalar summaries to a new TensorBoard event file.

    Readable by TensorBoard, ``tf.compat.v1.train.summary_iterator`` and any
    TFRecord reader. Scalars are stored as float32 ``simple_value``.

    Args:
        directory: Where the file is created (made if missing).

    Example:

    ```python
    writer = EventFileWriter("logs/run")
    writer.add_scalars({"density/overall": 0.1}, step=0)
    writer.close()
    ```
    """

    _counter = itertools.count()

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        # "tfevents" in the name is what TensorBoard looks for; the counter
        # keeps two writers of one process in one second apart.
        name = "events.out.tfevents.{}.{}.{}.{}".format(
            int(time.time()), socket.gethostname(), os.getpid(),
            next(self._counter),
        )
        self.path = os.path.join(directory, name)
        self._file = open(self.path, "wb")
        self._write(_event(0, file_version="brain.Event:2"))
        self.flush()

    def _write(self, data):
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", _masked_crc(header)))
        self._file.write(data + struct.pack("<I", _masked_crc(data)))

    def add_scalars(self, values, step):
        """Writes one event holding ``{tag: value}`` at ``step``."""
        if values:
            self._write(_event(step, summary=_scalar_summary(values)))

    def flush(self):
        self._file.flush()

    def close(self):
        if not self._file.closed:
            self._file.close()

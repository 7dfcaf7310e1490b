"""Regenerates the figures of docs/observability.md.

Usage, from the repository root (a few seconds, no data, no training):

    python benchmarks/make_figures.py            # writes docs/img/*.png
    python benchmarks/make_figures.py /tmp/figs  # somewhere else

Figures:

* ``layer_densities_lenet300_100.png``: the paper's Fig. 7 for
  LeNet-300-100 (784-300-100-10) at overall density 0.1.
* ``layer_densities_vgg16.png``: the same for the CIFAR VGG16 (13 3x3
  convolutions and one 512 -> 10 classifier), log density axis.
* ``overparameterization.png``: the paper's Fig. 2, the width Theorem 2.1
  requires of an ER source for a 128-10 target at confidence 0.999.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_er.research import models, plot  # noqa: E402

# CIFAR VGG16: conv widths ("M" = max pooling), 3 input channels.
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_shapes(num_classes=10):
    """``{name: kernel shape}`` of the CIFAR VGG16, in Keras layout."""
    shapes, channels = {}, 3
    for width in VGG16_CONFIG:
        if width == "M":
            continue
        shapes[f"conv{len(shapes) + 1}"] = (3, 3, channels, width)
        channels = width
    shapes["fc"] = (channels, num_classes)
    return shapes


def main(out_dir):
    paths = {
        name: os.path.join(out_dir, name)
        for name in ("layer_densities_lenet300_100.png",
                     "layer_densities_vgg16.png", "overparameterization.png")
    }
    plot.plot_layer_densities(
        models.lenet300_100(), density=0.1, log_scale=True,
        path=paths["layer_densities_lenet300_100.png"],
        title="LeNet-300-100, overall density 0.1",
    )
    plot.plot_layer_densities(
        vgg16_shapes(), density=0.1, log_scale=True,
        path=paths["layer_densities_vgg16.png"],
        title="VGG16 (CIFAR), overall density 0.1",
    )
    plot.plot_overparameterization(path=paths["overparameterization.png"])
    for path in paths.values():
        print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join("docs", "img"))

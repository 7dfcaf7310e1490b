"""Keras callbacks that train sparse networks inside their ER masks."""

# Sparse-to-sparse pruning (IMP, STR, gradual magnitude pruning).
# Dynamic sparse training and strong lottery tickets (RiGL, SET, EdgePopup).

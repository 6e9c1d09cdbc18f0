"""A helper shared by tests that compare two paths through a model."""

import keras
import numpy as np


def perturb_weights(model, seed: int = 0, scale: float = 0.3) -> None:
    """Moves every weight and batch-norm statistic of ``model`` away from its
    initial value (what a short ``fit`` does, without compiling a training
    step): kernels and biases get Gaussian noise, moving variances stay
    positive. Tests of equalities between paths then see non-trivial weights."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        noise = rng.normal(scale=scale, size=value.shape).astype(value.dtype)
        if "moving_variance" in variable.path:
            variable.assign(np.abs(value + noise) + 0.5)
        else:
            variable.assign(value + noise)

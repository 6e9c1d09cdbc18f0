"""Segmentation losses."""

from __future__ import annotations

import keras
from keras import ops

from keras_unetpp.checks import finite_number, whole_number
from keras_unetpp.values import binary_targets, binary_truth, label_targets
from keras_unetpp.weights import pixel_weights


def prepare_targets(y_true, y_pred, from_logits: bool):
    """Brings ``y_true`` and ``y_pred`` to float32 one-hot/probability tensors
    of the same shape (N, ..., C), by the rules of [`keras_unetpp.values`][keras_unetpp.values].

    Binary (``C == 1``): [`binary_targets()`][keras_unetpp.values.binary_targets] (0/1, soft
    labels in [0, 1], or 0/255). Multi-class (``C > 1``):
    [`label_targets()`][keras_unetpp.values.label_targets] (one-hot or integer labels; labels
    outside ``0..C-1`` such as 255 and all-zero one-hot rows are ignored).

    Returns:
        ``(y_true, y_pred, valid)``: ``valid`` is None (binary: every pixel counts) or float32
            ``(N, ..., 1)``, 0 on ignored pixels.
    """
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.convert_to_tensor(y_true)
    num_classes = y_pred.shape[-1]
    if num_classes is None:
        raise ValueError(f"The prediction needs a known channel axis, got shape {y_pred.shape}.")
    valid = None
    if num_classes == 1:
        if from_logits:
            y_pred = ops.sigmoid(y_pred)
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = ops.expand_dims(y_true, -1)
        y_true = binary_targets(y_true)
    else:
        if from_logits:
            y_pred = ops.softmax(y_pred, axis=-1)
        y_true, valid = label_targets(y_true, num_classes, rank=len(y_pred.shape))
    check_same_shape(y_true, y_pred)
    if not from_logits:  # probabilities outside [0, 1] are clipped, as Keras' probabilistic losses do; NaN stays NaN
        y_pred = ops.where(ops.isnan(y_pred), y_pred, ops.clip(y_pred, 0.0, 1.0))
    return y_true, y_pred, valid


def reduce_losses(losses, reduction, dtype):
    """Per-sample losses reduced as Keras reduces them (``"sum_over_batch_size"``/``"mean"``: the
    mean, ``"sum"``: the sum, ``None``/``"none"``: unreduced)."""
    if reduction in (None, "none"):
        reduced = losses
    elif reduction == "sum":
        reduced = ops.sum(losses)
    else:
        reduced = ops.mean(losses)
    return ops.cast(reduced, dtype or "float32")


def _weights_like(values, sample_weight, y_pred):
    """Pixel weights shaped like a loss function's values (N, H, W) (or (N,) for per-sample values)."""
    weights = pixel_weights(sample_weight, ops.convert_to_tensor(y_pred))[..., 0]  # (N, H, W) or (N, 1, 1)
    while len(weights.shape) > len(values.shape):
        weights = ops.squeeze(weights, -1)
    return weights


def check_same_shape(y_true, y_pred) -> None:
    """Raises a ValueError naming both shapes when ranks differ or a known
    dimension of ``y_true`` differs from the same one of ``y_pred``."""
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(true_shape) != len(pred_shape) or any(
        a is not None and b is not None and a != b for a, b in zip(true_shape, pred_shape)
    ):
        raise ValueError(f"y_true of shape {true_shape} does not match y_pred of shape {pred_shape}.")


def soft_dice(y_true, y_pred, axes, smooth: float, weights=None):
    """(2 * sum(w y p) + smooth) / (sum(w y) + sum(w p) + smooth) over ``axes`` (``w``: per-pixel
    weights, 1 by default); 1 where both sums are 0 and ``smooth`` is 0 (empty truth, empty prediction)."""
    w = 1.0 if weights is None else weights
    intersection = ops.sum(w * y_true * y_pred, axis=axes)
    denominator = ops.sum(w * y_true, axis=axes) + ops.sum(w * y_pred, axis=axes) + smooth
    empty = denominator == 0  # NaN is not 0: a NaN prediction gives a NaN dice, never a perfect one
    safe = ops.where(empty, 1.0, denominator)
    return ops.where(empty, 1.0, (2.0 * intersection + smooth) / safe)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class FocalDiceLoss(keras.losses.Loss):
    """Dice loss with a focal term: ``1 - dice + alpha * (1 - dice) ** gamma``.

    ``dice = (2 * sum(y * p) + smooth) / (sum(y) + sum(p) + smooth)``, the
    soft Dice coefficient of the probabilities ``p``. The loss lies in
    ``[0, 1 + alpha]``, is 0 for a perfect prediction, and the focal term adds
    weight where the overlap is poor.

    **Where the sums run.** ``per_image=False`` (default) takes the sums over
    the whole batch (all images, all pixels): the loss of a batch of aerial
    tiles, many without any building, stays well defined and is not dominated
    by the tiles that have little foreground. ``per_image=True`` computes one
    Dice per image, so every image counts the same; an image with an empty
    mask then scores ``smooth / (sum(p) + smooth)``, which punishes even a few
    false-positive pixels hard.

    **Classes.** One output channel: binary, sigmoid probabilities; masks
    0/1, or 0/255 (a batch whose maximum exceeds 1 is read as non-zero =
    foreground, so stray values such as 2 are foreground too). ``C >
    1`` channels: softmax probabilities; ``y_true`` one-hot (``C`` channels)
    or integer labels (one channel or none). The loss is computed per class
    and averaged over classes, so the focal term also up-weights the classes
    segmented worst.

    **Bad values.** Probabilities outside [0, 1] (with ``from_logits=False``)
    are clipped to it, as Keras' probabilistic losses do; NaN predictions give
    a NaN loss (so ``keras.callbacks.TerminateOnNaN`` fires); a ``y_true``
    whose shape does not match ``y_pred`` raises a ``ValueError`` naming both.

    **Precision.** Everything is computed in float32, also for float16 and
    bfloat16 predictions (mixed precision).

    **Empty masks.** With an empty truth and an empty prediction the Dice is
    1 and the loss 0 (also with ``smooth=0``); with an empty truth and any
    predicted foreground it is ``1 - smooth / (sum(p) + smooth)`` plus its
    focal term. Values and gradients are finite everywhere.

    Args:
        alpha: Weight of the focal term, >= 0.
        gamma: Exponent of the focal term, > 0.
        smooth: Added to numerator and denominator, >= 0.
        from_logits: ``y_pred`` holds logits (sigmoid/softmax applied here).
        per_image: One Dice per image instead of one per batch.
        reduction: Keras loss reduction (over the images).
        name: Loss name.
        dtype: Dtype of the returned loss.

    Returns:
        Called as ``loss(y_true, y_pred)``: the reduced scalar loss.

    Raises:
        ValueError: For negative ``alpha``/``smooth``, non-positive ``gamma``
            or mismatching shapes.

    Examples:
        >>> import numpy as np
        >>> y = np.zeros((1, 4, 4, 1), "float32"); y[0, :2] = 1
        >>> float(FocalDiceLoss()(y, y))
        0.0
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        smooth: float = 1.0,
        from_logits: bool = False,
        per_image: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "focal_dice_loss",
        dtype=None,
    ):
        if alpha < 0 or gamma <= 0 or smooth < 0:
            raise ValueError(
                f"FocalDiceLoss needs alpha >= 0, gamma > 0 and smooth >= 0; "
                f"got alpha={alpha}, gamma={gamma}, smooth={smooth}."
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.smooth = float(smooth)
        self.from_logits = bool(from_logits)
        self.per_image = bool(per_image)

    def call(self, y_true, y_pred):
        return self._losses(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """With ``sample_weight`` (per sample or per pixel, ``keras_unetpp.weights``) the weights enter
        the Dice sums, so a pixel of weight 0 has no effect; per image, each image's loss is also
        scaled by its mean weight (a per-sample weight scales that sample's loss, as in Keras)."""
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        weights = pixel_weights(sample_weight, ops.convert_to_tensor(y_pred))
        losses = self._losses(y_true, y_pred, weights)
        if self.per_image:
            spread = ops.broadcast_to(weights, ops.shape(ops.convert_to_tensor(y_pred)[..., :1]))
            losses = losses * ops.mean(spread, axis=tuple(range(1, len(spread.shape))))
        return reduce_losses(losses, self.reduction, self.dtype)

    def _losses(self, y_true, y_pred, weights=None):
        y_true, y_pred, valid = prepare_targets(y_true, y_pred, self.from_logits)
        if valid is not None:  # ignored labels weigh 0: neither their truth nor their prediction enters the sums
            weights = valid if weights is None else weights * valid
        rank = len(y_pred.shape)
        axes = tuple(range(1, rank - 1)) if self.per_image else tuple(range(rank - 1))
        dice = soft_dice(y_true, y_pred, axes, self.smooth, weights)  # (N, C) or (C,)
        miss = 1.0 - dice
        positive = miss > 0
        focal = ops.where(positive, ops.power(ops.where(positive, miss, 1.0), self.gamma), 0.0)
        per_class = miss + self.alpha * focal
        loss = ops.mean(per_class, axis=-1)
        if not self.per_image:
            loss = ops.broadcast_to(loss, (ops.shape(y_pred)[0],))
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "smooth": self.smooth,
            "from_logits": self.from_logits,
            "per_image": self.per_image,
        }


@keras.saving.register_keras_serializable(package="keras_unetpp")
class LabelCrossEntropy(keras.losses.Loss):
    """Categorical cross-entropy of multi-class labels over the pixels that count.

    Takes integer labels or one-hot rows, as every loss and metric here does, with the one ignore
    rule of [`label_targets()`][keras_unetpp.values.label_targets]: labels outside ``0..C-1``
    (255, -1) and all-zero one-hot rows have no effect. Each image's loss is the mean over its
    counted pixels. Why not ``keras.losses.SparseCategoricalCrossentropy(ignore_class=255)``: it
    ignores one value only, takes integer labels only, and its backward pass fails on the PyTorch
    backend ("grad_input must be contiguous", Keras 3.15 with torch 2.14).

    Args:
        from_logits: ``y_pred`` holds logits (softmax applied here).
        reduction: Keras loss reduction.
        name: Loss name.
        dtype: Dtype of the returned loss.

    Returns:
        Called as ``loss(y_true, y_pred)``: the reduced loss.

    Examples:
        >>> import numpy as np
        >>> p = np.array([[[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]], "float32")
        >>> y = np.array([[[[0], [255]]]])
        >>> round(float(LabelCrossEntropy()(y, p)), 4) == round(float(-np.log(0.7)), 4)
        True
    """

    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size",
                 name: str = "label_cross_entropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return self._losses(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        weights = pixel_weights(sample_weight, ops.convert_to_tensor(y_pred))
        return reduce_losses(self._losses(y_true, y_pred, weights), self.reduction, self.dtype)

    def _losses(self, y_true, y_pred, weights=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if y_pred.shape[-1] in (None, 1):
            raise ValueError(f"LabelCrossEntropy is multi-class: C >= 2 output channels, got shape {y_pred.shape}.")
        y_true, probabilities, valid = prepare_targets(y_true, y_pred, self.from_logits)
        eps = keras.config.epsilon()
        per_pixel = -ops.sum(y_true * ops.log(ops.clip(probabilities, eps, 1.0)), axis=-1, keepdims=True)
        counted = valid if weights is None else valid * ops.cast(weights > 0, "float32")
        scale = valid if weights is None else valid * weights
        axes = tuple(range(1, len(y_pred.shape)))
        return ops.sum(scale * per_pixel, axis=axes) / ops.maximum(ops.sum(counted, axis=axes), 1.0)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class HaloWeightedCrossEntropy(keras.losses.Loss):
    """Binary cross-entropy that weighs the background around objects more.

    A background pixel within ``halo_width // 2`` pixels (a square window) of
    a foreground pixel weighs ``1 + halo_weight``; every other pixel weighs 1.
    The loss of an image is the weighted mean ``sum(w * bce) / sum(w)``. It
    targets the error that dominates aerial building maps: a halo of false
    positives around and between buildings (a Dice loss barely notices a thin
    band of extra pixels; this term charges each of them). The idea is the
    weight map of the original U-Net (Ronneberger et al. 2015), which weighs
    the narrow gaps between touching objects, computed here in the graph with a
    max-pool dilation instead of distance transforms, so it needs no extra
    input and runs on every backend. Add it to a Dice loss with
    [`CombinedLoss`][keras_unetpp.CombinedLoss], e.g.
    ``CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy()])``.

    Args:
        halo_weight: Extra weight of the background halo (>= 0; 0 gives plain
            binary cross-entropy).
        halo_width: Window of the dilation in pixels (odd, >= 1).
        from_logits: ``y_pred`` holds logits instead of probabilities.
        reduction: Keras loss reduction.
        name: Loss name.
        dtype: Dtype of the returned loss.

    Returns:
        Called as ``loss(y_true, y_pred)``: the reduced scalar loss.

    Raises:
        ValueError: For a negative weight, an even or non-positive width, more
            than one channel, or mismatching shapes.

    Examples:
        >>> import numpy as np
        >>> y = np.zeros((1, 8, 8, 1), "float32"); y[0, 2:5, 2:5] = 1
        >>> p = np.where(y > 0, 0.9, 0.1).astype("float32")
        >>> round(float(HaloWeightedCrossEntropy(halo_weight=0.0)(y, p)), 4)  # plain BCE
        0.1054
    """

    def __init__(
        self,
        halo_weight: float = 4.0,
        halo_width: int = 9,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "halo_weighted_cross_entropy",
        dtype=None,
    ):
        halo_width = whole_number(halo_width, "halo_width", 1)
        if halo_weight < 0 or halo_width % 2 == 0:
            raise ValueError(
                f"HaloWeightedCrossEntropy needs halo_weight >= 0 and an odd halo_width >= 1; "
                f"got halo_weight={halo_weight}, halo_width={halo_width}."
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.halo_weight = float(halo_weight)
        self.halo_width = int(halo_width)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return self._losses(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """With ``sample_weight`` (per sample or per pixel, ``keras_unetpp.weights``) each pixel's term
        is multiplied by its weight; the normalisation stays the halo weights', so a per-sample
        weight scales that sample's loss, as in Keras."""
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        weights = pixel_weights(sample_weight, ops.convert_to_tensor(y_pred))
        return reduce_losses(self._losses(y_true, y_pred, weights), self.reduction, self.dtype)

    def _losses(self, y_true, y_pred, pixel_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if y_pred.shape[-1] != 1:
            raise ValueError(f"HaloWeightedCrossEntropy is binary: one output channel, got shape {y_pred.shape}.")
        y_true, probabilities, _ = prepare_targets(y_true, y_pred, self.from_logits)
        y_true = binary_truth(y_true)
        # pixels of weight 0 have no effect: no halo is drawn around them and they are not counted
        counts = 1.0 if pixel_weight is None else ops.cast(pixel_weight > 0, "float32")
        seen = y_true * counts
        dilated = ops.max_pool(seen, self.halo_width, strides=1, padding="same")
        weights = 1.0 + self.halo_weight * ops.maximum(dilated - y_true, 0.0)
        eps = keras.config.epsilon()
        p = ops.clip(probabilities, eps, 1.0 - eps)
        bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        axes = tuple(range(1, len(y_pred.shape)))
        scale = 1.0 if pixel_weight is None else pixel_weight
        counted = ops.sum(ops.broadcast_to(weights * counts, ops.shape(weights)), axis=axes)
        return ops.sum(scale * weights * bce, axis=axes) / ops.maximum(counted, keras.config.epsilon())

    def get_config(self):
        return {
            **super().get_config(),
            "halo_weight": self.halo_weight,
            "halo_width": self.halo_width,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="keras_unetpp")
class CombinedLoss(keras.losses.Loss):
    """A weighted sum of losses, saved and loaded as one.

    Keras has no loss that adds losses and keeps them serializable (a
    ``lambda`` works in ``fit`` but a model compiled with it cannot be loaded
    with its training state); this is that loss. Each part is called on the
    same ``(y_true, y_pred)`` and reduced on its own (loss objects by their
    reduction, loss functions such as ``"binary_crossentropy"`` by the mean);
    the result is ``sum(w_i * loss_i)``. Sample weights given to ``fit`` scale
    that sum per sample.

    Args:
        losses: The parts: Keras loss objects (or their registered names,
            e.g. ``"binary_crossentropy"``).
        weights: One weight per part (default: all 1).
        reduction: ``"none"`` gives the sum once per sample; any other reduction gives the sum
            itself (each part reduces first, so ``"sum"`` and ``"sum_over_batch_size"`` agree, with
            sample weights or without).
        name: Loss name.
        dtype: Dtype of the returned loss.

    Returns:
        Called as ``loss(y_true, y_pred)``: the weighted sum, a scalar.

    Raises:
        ValueError: For no parts, or a weight count that differs from the part count.

    Examples:
        >>> import numpy as np
        >>> y = np.zeros((1, 8, 8, 1), "float32"); y[0, 2:5, 2:5] = 1
        >>> p = np.where(y > 0, 0.9, 0.1).astype("float32")
        >>> loss = CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy(halo_weight=0.0)], weights=[1.0, 2.0])
        >>> part = float(FocalDiceLoss()(y, p)) + 2 * float(HaloWeightedCrossEntropy(halo_weight=0.0)(y, p))
        >>> bool(abs(float(loss(y, p)) - part) < 1e-5)
        True
    """

    def __init__(self, losses, weights=None, reduction: str = "sum_over_batch_size",
                 name: str = "combined_loss", dtype=None):
        parts = [keras.losses.get(loss) for loss in losses]
        weights = [1.0] * len(parts) if weights is None else [finite_number(w, "each of weights") for w in weights]
        if not parts or len(weights) != len(parts):
            raise ValueError(
                f"CombinedLoss needs at least one loss and one weight per loss; got {len(parts)} loss(es) "
                f"and {len(weights)} weight(s)."
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.losses = parts
        self.weights = weights

    def call(self, y_true, y_pred):
        return ops.broadcast_to(self._total(y_true, y_pred), (ops.shape(y_pred)[0],))

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Each part gets ``sample_weight`` itself (loss objects apply it by their own rule, loss
        functions per pixel), so a sample or pixel of weight 0 drives none of the parts. The parts
        reduce themselves: the result is their weighted sum, reduced once, the same way with and
        without weights (``"none"``: one copy per sample)."""
        total = ops.cast(self._total(y_true, y_pred, sample_weight), self.dtype or "float32")
        if self.reduction in (None, "none"):
            return ops.broadcast_to(total, (ops.shape(ops.convert_to_tensor(y_pred))[0],))
        return total

    def _total(self, y_true, y_pred, sample_weight=None):
        total = 0.0
        for weight, loss in zip(self.weights, self.losses):
            if isinstance(loss, keras.losses.Loss):
                part = loss(y_true, y_pred, sample_weight=sample_weight)
            else:  # a loss function: per-pixel values (N, H, W), weighted, then averaged
                values = loss(y_true, y_pred)
                if sample_weight is not None:
                    values = values * _weights_like(values, sample_weight, y_pred)
                part = ops.mean(values)
            total = total + weight * part
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses],
            "weights": self.weights,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["losses"] = [keras.saving.deserialize_keras_object(loss) for loss in config["losses"]]
        return cls(**config)

"""Streaming segmentation metrics over every pixel seen."""

from __future__ import annotations

import keras
from keras import ops

from keras_unetpp.checks import whole_number
from keras_unetpp.losses import check_same_shape
from keras_unetpp.values import binary_truth, label_targets
from keras_unetpp.weights import pixel_weights


class _BinaryConfusionMetric(keras.metrics.Metric):
    """Accumulates foreground TP, FP and FN over all pixels of all batches.
    A NaN (or infinite) prediction makes the result NaN instead of counting as
    background; a ``y_true`` whose shape does not match raises a ValueError."""

    def __init__(
        self,
        threshold: float = 0.5,
        from_logits: bool = False,
        empty_value: float = 1.0,
        name: str | None = None,
        dtype=None,
    ):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        self.from_logits = bool(from_logits)
        self.empty_value = float(empty_value)
        self.true_positives = self.add_variable((), initializer="zeros", name="true_positives")
        self.false_positives = self.add_variable((), initializer="zeros", name="false_positives")
        self.false_negatives = self.add_variable((), initializer="zeros", name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_pred.shape) == 4 and y_pred.shape[-1] not in (1, None):
            raise ValueError(
                f"{type(self).__name__} is a binary metric and expects one output channel for "
                f"(N, H, W, C) images, got a prediction of shape {y_pred.shape}."
            )
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        predicted = ops.cast(y_pred >= self.threshold, "float32")
        y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
        if len(y_true.shape) == len(predicted.shape) - 1:
            y_true = ops.expand_dims(y_true, -1)
        check_same_shape(y_true, predicted)
        truth = binary_truth(y_true)  # 0/1, soft and 0/255 masks: the rule of keras_unetpp.values
        weight = 1.0 if sample_weight is None else pixel_weights(sample_weight, predicted)
        poison = ops.sum(y_pred - y_pred)  # 0, or NaN when a prediction is NaN/inf: the result turns NaN
        self.true_positives.assign_add(ops.sum(weight * truth * predicted) + poison)
        self.false_positives.assign_add(ops.sum(weight * (1.0 - truth) * predicted))
        self.false_negatives.assign_add(ops.sum(weight * truth * (1.0 - predicted)))

    def _ratio(self, numerator, denominator):
        empty = denominator == 0  # a NaN count is not empty: it stays NaN
        safe = ops.where(empty, 1.0, denominator)
        return ops.where(empty, self.empty_value, numerator / safe)

    def get_config(self):
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "from_logits": self.from_logits,
            "empty_value": self.empty_value,
        }


@keras.saving.register_keras_serializable(package="keras_unetpp")
class BinaryIoU(_BinaryConfusionMetric):
    """Foreground IoU, ``TP / (TP + FP + FN)``, over every pixel seen.

    Counts accumulate across batches (not a mean of per-batch IoUs) and are
    reset each epoch, so the value is the IoU of the whole epoch's pixels.
    When no pixel was foreground in truth or prediction the value is
    ``empty_value`` (1.0: nothing to find and nothing claimed is a perfect
    answer).

    How it differs from ``keras.metrics.BinaryIoU``: Keras' metric by default
    averages the IoU of *both* classes (background included, which inflates
    the score on sparse masks like buildings) and returns 0 when a class is
    absent. Ours reports the foreground IoU a segmentation paper reports, with
    a defined value on empty tiles; it also reads 0/255 masks correctly
    (truth is ``y_true >= 0.5``) and accepts logits.

    Counts are float32: exact up to 2**24 pixels per count, relative error
    about 1e-7 beyond.

    Args:
        threshold: A probability ``>= threshold`` is foreground.
        from_logits: ``y_pred`` holds logits.
        empty_value: Value when TP + FP + FN is 0.
        name: Metric name.
        dtype: Metric dtype.

    Returns:
        ``result()`` is the scalar IoU.

    Examples:
        >>> import numpy as np
        >>> m = BinaryIoU()
        >>> m.update_state(np.array([[1, 1, 0, 0]]), np.array([[0.9, 0.2, 0.8, 0.1]]))
        >>> round(float(m.result()), 4)
        0.3333
    """

    def __init__(self, threshold=0.5, from_logits=False, empty_value=1.0, name="iou", dtype=None):
        super().__init__(threshold, from_logits, empty_value, name=name, dtype=dtype)

    def result(self):
        tp = self.true_positives
        return self._ratio(tp, tp + self.false_positives + self.false_negatives)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class BinaryDice(_BinaryConfusionMetric):
    """Foreground Dice (= F1), ``2 TP / (2 TP + FP + FN)``, over every pixel seen.

    Streams like [`BinaryIoU`][keras_unetpp.BinaryIoU] (same arguments, same empty value).
    Dice and IoU are related by ``dice = 2 iou / (1 + iou)``.

    Args:
        threshold: A probability ``>= threshold`` is foreground.
        from_logits: ``y_pred`` holds logits.
        empty_value: Value when TP + FP + FN is 0.
        name: Metric name.
        dtype: Metric dtype.

    Returns:
        ``result()`` is the scalar Dice.

    Examples:
        >>> import numpy as np
        >>> m = BinaryDice()
        >>> m.update_state(np.array([[1, 1, 0, 0]]), np.array([[0.9, 0.2, 0.8, 0.1]]))
        >>> float(m.result())
        0.5
    """

    def __init__(self, threshold=0.5, from_logits=False, empty_value=1.0, name="dice", dtype=None):
        super().__init__(threshold, from_logits, empty_value, name=name, dtype=dtype)

    def result(self):
        tp2 = 2.0 * self.true_positives
        return self._ratio(tp2, tp2 + self.false_positives + self.false_negatives)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class MulticlassIoU(keras.metrics.Metric):
    """Streaming per-class IoU and their mean over the classes present.

    Accumulates a ``num_classes x num_classes`` confusion matrix (rows: true
    class, columns: predicted class = argmax of ``y_pred``) over every pixel
    seen. ``result()`` is the mean IoU over the classes that occur in the
    truth or the prediction; a class absent from both has no IoU (0/0) and is
    left out of the mean instead of counting as 0 or 1. Before any pixel the
    result is 0. ``per_class_iou()`` gives every class, NaN for absent ones.
    Pixels whose true label lies outside ``[0, num_classes)`` (e.g. 255 for
    "unlabelled") and all-zero one-hot rows are not counted: the ignore rule of
    [`label_targets()`][keras_unetpp.values.label_targets], which the loss applies too.
    A NaN (or infinite) prediction makes the result NaN, as for ``BinaryIoU``.

    Keras' ``MeanIoU`` / ``OneHotMeanIoU`` average the same way but take
    either integer labels or one-hot labels (not both, as this library's
    losses do) and do not expose the per-class values; this metric takes
    both and does.

    Args:
        num_classes: Number of classes (the prediction's last axis).
        name: Metric name.
        dtype: Dtype of the result.

    Returns:
        ``result()``: scalar mean IoU over present classes.

    Raises:
        ValueError: For ``num_classes < 2`` or a prediction whose last axis
            is not ``num_classes``.

    Examples:
        >>> import numpy as np
        >>> y = np.array([[0, 0], [1, 2]])[None]                  # integer labels, classes 0 1 2 (3 absent)
        >>> p = np.eye(4)[np.array([[0, 1], [1, 2]])][None]       # predicted classes as probabilities
        >>> m = MulticlassIoU(4); m.update_state(y, p)
        >>> np.round(m.per_class_iou(), 3).tolist()
        [0.5, 0.5, 1.0, nan]
        >>> round(float(m.result()), 3)
        0.667
    """

    def __init__(self, num_classes: int, name: str = "mean_iou", dtype=None):
        num_classes = whole_number(num_classes, "num_classes")
        if num_classes < 2:
            raise ValueError(f"MulticlassIoU needs num_classes >= 2 (use BinaryIoU for one channel), got {num_classes}.")
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.confusion = self.add_variable((self.num_classes, self.num_classes), initializer="zeros",
                                           name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if y_pred.shape[-1] != self.num_classes:
            raise ValueError(
                f"MulticlassIoU({self.num_classes}) needs a prediction with {self.num_classes} channels "
                f"(last axis), got shape {y_pred.shape}."
            )
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = ops.expand_dims(y_true, -1)
        # one ignore rule with the loss and the report (keras_unetpp.values): an ignored pixel is a zero row
        truth, valid = label_targets(y_true, self.num_classes, rank=len(y_pred.shape))
        check_same_shape(truth, y_pred)
        y_pred = ops.cast(y_pred, "float32")
        predicted = ops.reshape(ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes), (-1, self.num_classes))
        truth = ops.reshape(truth, (-1, self.num_classes))
        if sample_weight is not None:
            weight = ops.broadcast_to(pixel_weights(sample_weight, y_pred)[..., 0], ops.shape(valid)[:-1])
            truth = truth * ops.reshape(weight, (-1, 1))
        poison = ops.sum(y_pred - y_pred)  # 0, or NaN when a prediction is NaN/inf: the result turns NaN
        self.confusion.assign_add(ops.matmul(ops.transpose(truth), predicted) + poison)

    def _per_class(self):
        true_positives = ops.diagonal(self.confusion)
        union = ops.sum(self.confusion, axis=0) + ops.sum(self.confusion, axis=1) - true_positives
        return true_positives, union

    def result(self):
        true_positives, union = self._per_class()
        present = ops.cast(union > 0, "float32")
        iou = true_positives / ops.where(union > 0, union, 1.0)
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)

    def per_class_iou(self):
        """IoU of every class as a numpy array, NaN where the class is absent
        from truth and prediction alike."""
        import numpy as np

        true_positives, union = (np.asarray(ops.convert_to_numpy(t), np.float64) for t in self._per_class())
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, true_positives / union, np.nan)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

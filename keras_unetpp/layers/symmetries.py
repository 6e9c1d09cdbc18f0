"""The symmetries a saved model was trained under, carried inside the model,
so that test-time augmentation averages over those alone (see
[`Symmetries`][keras_unetpp.layers.Symmetries])."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_unetpp.layers.dihedral import DIHEDRAL_TRANSFORMS

#: Named sets of ``(transpose, flip_up_down, flip_left_right)`` triples.
NAMED_SYMMETRIES = {
    "dihedral": DIHEDRAL_TRANSFORMS,
    "mirror": ((False, False, False), (False, False, True)),
    "flips": tuple(t for t in DIHEDRAL_TRANSFORMS if not t[0]),
    "none": ((False, False, False),),
}


def symmetry_transforms(symmetries: str | Sequence[Sequence[bool]]) -> tuple[tuple[bool, bool, bool], ...]:
    """The transform triples a symmetry specification names.

    Args:
        symmetries: ``"dihedral"`` (the 8 symmetries of the square: aerial
            scenes), ``"mirror"`` (as is and mirrored left-right: chest films,
            anything with an up and a down), ``"flips"`` (as is and flipped
            either way, no transposes), ``"none"``; or a non-empty sequence of
            ``(transpose, flip_up_down, flip_left_right)`` triples from
            ``DIHEDRAL_TRANSFORMS``.

    Returns:
        A tuple of distinct triples, in the order given.

    Raises:
        ValueError: For an unknown name, an empty sequence, or a triple that
            is not one of ``DIHEDRAL_TRANSFORMS``.

    Examples:
        >>> symmetry_transforms("mirror")
        ((False, False, False), (False, False, True))
        >>> len(symmetry_transforms("dihedral"))
        8
    """
    if isinstance(symmetries, str):
        if symmetries not in NAMED_SYMMETRIES:
            raise ValueError(f"Unknown symmetries {symmetries!r}; use one of {sorted(NAMED_SYMMETRIES)} or a "
                             "sequence of (transpose, flip_up_down, flip_left_right) triples.")
        return NAMED_SYMMETRIES[symmetries]
    try:
        transforms = tuple(tuple(bool(v) for v in t) for t in symmetries)
    except TypeError:
        transforms = ()
    if not transforms or any(t not in DIHEDRAL_TRANSFORMS for t in transforms):
        raise ValueError(f"symmetries must name a set ({sorted(NAMED_SYMMETRIES)}) or be a non-empty sequence of "
                         f"triples from DIHEDRAL_TRANSFORMS, got {symmetries!r}.")
    return tuple(dict.fromkeys(transforms))


@keras.saving.register_keras_serializable(package="keras_unetpp")
class Symmetries(keras.layers.Layer):
    """Passes its input through unchanged and records the transforms a model
    was trained under (what test-time augmentation may average over).

    Averaging only helps over transforms the model was trained under: a lung
    model of the lung example (trained with left-right flips only) scores
    validation Dice 0.951 with the mirror average and 0.857 with the 8-fold
    one. [`with_preprocessing()`][keras_unetpp.with_preprocessing] puts this layer
    after the input when given ``symmetries``, so the saved file carries the set;
    [`describe_model()`][keras_unetpp.describe_model] reads it, and ``tta=True``
    in [`predict_tiled()`][keras_unetpp.inference.predict_tiled] /
    [`predict_augmented()`][keras_unetpp.inference.predict_augmented] and
    ``keras-unetpp predict --tta`` average over it. A layer rather than a model
    attribute: a functional model's configuration holds only its layers, so a
    layer is what survives ``model.save()`` and ``load_model()`` without a
    custom model class.

    Args:
        transforms: As [`symmetry_transforms()`][keras_unetpp.layers.symmetry_transforms]
            takes them: a name or a sequence of triples.
        **kwargs: Standard layer arguments (``name``, ...).

    Examples:
        >>> layer = Symmetries("mirror")
        >>> layer.transforms
        ((False, False, False), (False, False, True))
        >>> Symmetries.from_config(layer.get_config()).transforms == layer.transforms
        True
    """

    def __init__(self, transforms: str | Sequence[Sequence[bool]] = "dihedral", **kwargs):
        super().__init__(**kwargs)
        self.transforms = symmetry_transforms(transforms)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "transforms": [list(t) for t in self.transforms]}

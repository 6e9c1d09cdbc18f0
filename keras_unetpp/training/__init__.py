"""The training recipe as API (``Recipe``, ``fit``, the schedules, backups, curves) and the planned
run behind ``keras-unetpp train`` (``fingerprint``, ``make_plan``, ``train``)."""

from keras_unetpp.training.plan import fingerprint, make_plan
from keras_unetpp.training.recipe import (
    PRECISIONS,
    EpochCosine,
    LearningRateLogger,
    Recipe,
    data_parallel,
    fit,
    fit_verbosity,
    learning_rate_schedule,
    save_curves,
    training_callbacks,
    write_metrics,
)
from keras_unetpp.training.run import train

__all__ = [
    "PRECISIONS",
    "EpochCosine",
    "LearningRateLogger",
    "Recipe",
    "data_parallel",
    "fingerprint",
    "fit",
    "fit_verbosity",
    "learning_rate_schedule",
    "make_plan",
    "save_curves",
    "train",
    "training_callbacks",
    "write_metrics",
]

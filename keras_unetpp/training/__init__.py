"""The training recipe as API: ``Recipe``, ``fit``, the schedule, backups, curves."""

from keras_unetpp.training.recipe import (
    PRECISIONS,
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

__all__ = [
    "PRECISIONS",
    "LearningRateLogger",
    "Recipe",
    "data_parallel",
    "fit",
    "fit_verbosity",
    "learning_rate_schedule",
    "save_curves",
    "training_callbacks",
    "write_metrics",
]

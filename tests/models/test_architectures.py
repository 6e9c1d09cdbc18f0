"""The named defaults: the compact Lite0 model is segmentation_models_pytorch's layout, the examples and
``keras-unetpp train`` build the same models from the one definition."""

import sys
from pathlib import Path

import pytest

from keras_unetpp.models import ARCHITECTURES, architecture, build_architecture
from keras_unetpp.models import encoders as encoder_lib

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_compact_lite0_widths_are_the_encoders_features_and_smps_decoder():
    spec = architecture("compact_lite0")
    # Lite0's own feature maps at strides 2..32, read from the backbone rather than from the table
    features, levels = encoder_lib.feature_model(encoder_lib.build_backbone("efficientnet_lite0", 3), 5)
    widths = tuple(output.shape[-1] for output in features.outputs)
    assert levels == [1, 2, 3, 4, 5] and spec["filters"][1:] == widths
    # smp's UnetPlusPlus default: decoder_channels=(256, 128, 64, 32, 16), deepest first
    assert spec["decoder_filters"][::-1] == (256, 128, 64, 32, 16)
    assert (spec["decoder"], spec["upsampling"]) == ("compact", "nearest")


def test_architecture_is_a_copy_and_names_are_checked():
    architecture("plain")["filters"] = (1, 2)
    assert ARCHITECTURES["plain"]["filters"] == (8, 16, 32, 64, 128, 256)
    with pytest.raises(ValueError, match="Unknown architecture 'tiny'"):
        architecture("tiny")
    with pytest.raises(ValueError, match="has no encoder"):
        build_architecture("plain", encoder_weights="imagenet")


def test_other_filters_give_the_compact_main_path_their_widths():
    model = build_architecture("compact_lite0", encoder=None, filters=(4, 8, 16))
    assert model.decoder_filters == (4, 8) and model.decoder == "compact"


def test_the_aerial_example_builds_the_named_default(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("aerial_buildings", None)
    import aerial_buildings

    args = aerial_buildings.parse_args(["--encoder-weights", "none"])
    built, named = aerial_buildings.build_model(args), build_architecture("compact_lite0")
    mine, theirs = built.get_config(), named.get_config()
    for config in (mine, theirs):
        config.pop("name", None)
    assert mine == theirs

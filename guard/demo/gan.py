"""The demo's face generator: the DCGAN that the ``gan-face-generate`` package ships, through ``TorchImage``.

A real GAN with real weights (3.6M parameters, 64 x 64 faces, latent of 100), small enough to run anywhere. The
package's code is MIT, but its weights were trained on DigiFace-1M, whose licence allows research use only: the
faces are for demonstrating the pipeline, not for products. Every record says so (``params.notes``).

The package declares torchvision and wandb as dependencies, which do not install beside this project's CPU torch:
``guard models install gan-faces`` installs it without them and pins its weights file by SHA-256; only its
``models.py`` (plain torch) and its ``weights.tar`` (a state dict under ``netG_state_dict``) are used.
"""

from __future__ import annotations

MODEL_ID = "gan-face-generate==1.1.1 (DCGAN, chien-liu/DCGAN-PyTorch)"
DATA_NOTE = "trained on DigiFace-1M: research use only"
LATENT = (100, 1, 1)


def face_generator(device: str = "cpu"):
    """The DCGAN as a ``TorchImage`` generator. ``ModelUnavailableError`` (saying how to install it) when the
    package is missing or its weights file is not the one the catalogue pins: checked before anything of the
    package is imported."""
    from guard import models

    path = models.verified_model_path(models.package("gan-faces"))
    from gan_face_generate.models import Generator

    from generators.torch_image import TorchImage, load_state_dict

    module = Generator(ngpu=0, nc=3, nz=LATENT[0], ngf=64)
    module.load_state_dict(load_state_dict(path, "netG_state_dict"))
    return TorchImage(module, latent_shape=LATENT, model_id=MODEL_ID, weights=path, device=device, notes=DATA_NOTE)

"""Graded audio and image corruptions for robustness sweeps, on device in JAX.

`CORRUPTIONS` lists the sweeps used with MultiBench-style robustness metrics
(see `robustness_metrics`): each sweep starts at the clean level
(`Corruption.clean_level`, where `apply` is the identity) and then goes
through `Corruption.levels`, five severities from mild to severe. The image
families follow ImageNet-C (Hendrycks & Dietterich 2019), with sizes in
pixels chosen for 28x28 MNIST digits; the audio families are their analogues
for 1 s FSDD speech at 8 kHz. The functions live in `image_corruptions`
(`[batch, height, width, channels]` in [0, 1]) and `audio_corruptions`
(`[batch, samples]`); all are pure, take a `jax.random` key and run under
`jax.jit` with the level a Python float (static) or a traced float32 scalar.
"""

import dataclasses
from typing import Callable, Tuple

import jax

from mmjax.analysis import audio_corruptions as audio
from mmjax.analysis import image_corruptions as image
from mmjax.analysis.audio_corruptions import add_babble_noise
from mmjax.analysis.audio_corruptions import add_white_noise
from mmjax.analysis.image_corruptions import add_gaussian_noise
from mmjax.analysis.image_corruptions import occlude


@dataclasses.dataclass(frozen=True)
class Corruption:
  """A corruption and its default sweep.

  Attributes:
    modality: the input it corrupts, "audio" or "image".
    apply: `apply(rng, x, level) -> x`, a function of `image_corruptions`
      or `audio_corruptions`; `level` may be a traced float32 scalar.
    levels: the corrupted levels, mild to severe (the clean level excluded).
    unit: what a level measures, e.g. "SNR dB".
    clean_level: the level at which `apply` is the identity, first in a
      sweep: +inf for SNR levels, 0.0 for noise std and occluded fraction,
      1.0 for a contrast factor, and so on.
  """
  modality: str
  apply: Callable[..., jax.Array]
  levels: Tuple[float, ...]
  unit: str
  clean_level: float = 0.0

  @property
  def sweep_levels(self) -> Tuple[float, ...]:
    """(clean_level, *levels): the levels of a robustness sweep, in order."""
    return (self.clean_level,) + tuple(self.levels)


_SNR_LEVELS_DB = (20.0, 10.0, 5.0, 0.0, -5.0)
_INF = float("inf")

CORRUPTIONS = {
    "audio_white_noise": Corruption("audio", add_white_noise, _SNR_LEVELS_DB,
                                    "SNR dB", clean_level=_INF),
    "audio_babble_noise": Corruption("audio", add_babble_noise,
                                     _SNR_LEVELS_DB, "SNR dB",
                                     clean_level=_INF),
    "image_gaussian_noise": Corruption("image", add_gaussian_noise,
                                       (0.1, 0.2, 0.3, 0.5, 0.8),
                                       "noise std"),
    "image_occlusion": Corruption("image", occlude,
                                  (0.1, 0.25, 0.4, 0.6, 0.8),
                                  "occluded fraction"),
    "image_shot_noise": Corruption("image", image.add_shot_noise,
                                   (60.0, 25.0, 12.0, 5.0, 3.0),
                                   "photons per white pixel",
                                   clean_level=_INF),
    "image_impulse_noise": Corruption("image", image.add_impulse_noise,
                                      (0.03, 0.06, 0.09, 0.17, 0.27),
                                      "replaced fraction"),
    "image_defocus_blur": Corruption("image", image.defocus_blur,
                                     (1.0, 1.5, 2.0, 2.5, 3.0),
                                     "disk radius px"),
    "image_motion_blur": Corruption("image", image.motion_blur,
                                    (2.0, 3.0, 4.0, 6.0, 8.0),
                                    "blur length px"),
    "image_contrast": Corruption("image", image.reduce_contrast,
                                 (0.4, 0.3, 0.2, 0.1, 0.05),
                                 "contrast factor", clean_level=1.0),
    "image_brightness": Corruption("image", image.increase_brightness,
                                   (0.1, 0.2, 0.3, 0.4, 0.5),
                                   "brightness increase"),
    # ImageNet-C's qualities (80 to 40 at 224x224) barely touch a 28x28
    # digit made of four 8x8 blocks a side. Below ~15 the error is not
    # monotonic in the quality (the DC step rounds either way), hence gaps.
    "image_jpeg": Corruption("image", image.jpeg_compress,
                             (30.0, 20.0, 15.0, 8.0, 2.0), "JPEG quality",
                             clean_level=_INF),
    "image_pixelate": Corruption("image", image.pixelate,
                                 (2.0, 3.0, 4.0, 5.0, 7.0), "block side px",
                                 clean_level=1.0),
    "audio_pink_noise": Corruption("audio", audio.add_pink_noise,
                                   _SNR_LEVELS_DB, "SNR dB",
                                   clean_level=_INF),
    "audio_reverberation": Corruption("audio", audio.reverberate,
                                      (0.2, 0.4, 0.6, 0.9, 1.2), "RT60 s"),
    "audio_clipping": Corruption("audio", audio.clip_amplitude,
                                 (0.5, 0.3, 0.2, 0.1, 0.05),
                                 "clip level / peak", clean_level=1.0),
    "audio_telephone": Corruption("audio", audio.telephone_band,
                                  (3400.0, 2500.0, 1800.0, 1200.0, 800.0),
                                  "upper band edge Hz", clean_level=_INF),
    "audio_time_mask": Corruption("audio", audio.mask_time_span,
                                  (0.1, 0.2, 0.3, 0.5, 0.7),
                                  "masked fraction"),
}

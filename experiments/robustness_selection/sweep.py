"""Choosing the anti-laziness recipe on a validation speaker.

Early fusion, 600 steps. Speaker `theo` is held out of training (it is a
test fold of the robustness sweep) and is never evaluated here; speaker
`george` is the validation set (all his recordings, paired with the
validation images), so the table reports accuracy on a voice the model never
heard, which is what the recipe must improve. Run with
  python experiments/run_sweep.py experiments/robustness_selection
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "robustness"))
import recipes  # noqa: E402  pylint: disable=g-import-not-at-top

CONFIG = "configs/av_digits.py"
REPORT_SPLIT = "validation"

COMMON = {**recipes.STEPS, **recipes.UTTERANCE_NORMALIZATION,
          "eval_splits": ("validation",),
          "data.test_speakers": ("theo",),
          "data.validation_speakers": ("george",)}

VARIANTS = {
    "image_only": ("", {**recipes.PLAIN, "modalities": ("image",)}),
    "audio_only": ("", {**recipes.PLAIN, "modalities": ("audio",)}),
    "plain": ("", recipes.PLAIN),
    "speaker_augmentation": ("", {**recipes.PLAIN,
                                  **recipes.SPEAKER_AUGMENTATION}),
    "dropout_aux": ("", {**recipes.PLAIN, **recipes.MODALITY_DROPOUT,
                         **recipes.AUX_HEADS}),
    "ogm_ge": ("", {**recipes.PLAIN, **recipes.OGM_GE}),
    "all": ("", {**recipes.PLAIN, **recipes.SPEAKER_AUGMENTATION,
                 **recipes.MODALITY_DROPOUT, **recipes.OGM_GE}),
    # A longer run, for the image pathway (image only 0.966 at 600 steps).
    "image_only_long": ("", {**recipes.PLAIN, **recipes.LONG,
                             "modalities": ("image",)}),
    "dropout_aux_long": ("", {**recipes.PLAIN, **recipes.MODALITY_DROPOUT,
                              **recipes.AUX_HEADS, **recipes.LONG}),
    # Untried combinations at 1,200 steps (the better length above).
    "dropout_aux_augmentation_long": ("", {
        **recipes.PLAIN, **recipes.MODALITY_DROPOUT, **recipes.AUX_HEADS,
        **recipes.SPEAKER_AUGMENTATION, **recipes.LONG}),
    "audio_dropout_high_aux_long": ("", {
        **recipes.PLAIN, **recipes.AUDIO_DROPOUT_HIGH, **recipes.AUX_HEADS,
        **recipes.LONG}),
    "audio_dropout_high_aux_augmentation_long": ("", {
        **recipes.PLAIN, **recipes.AUDIO_DROPOUT_HIGH, **recipes.AUX_HEADS,
        **recipes.SPEAKER_AUGMENTATION, **recipes.LONG}),
    # Against nicolas-like voices (audio only 0.71 on a new speaker):
    # speaker-invariant features, and SpecAugment.
    "audio_only_cmvn_long": ("", {**recipes.PLAIN, **recipes.CMVN,
                                  **recipes.LONG, "modalities": ("audio",)}),
    "audio_dropout_high_aux_cmvn_long": ("", {
        **recipes.PLAIN, **recipes.AUDIO_DROPOUT_HIGH, **recipes.AUX_HEADS,
        **recipes.CMVN, **recipes.LONG}),
    "audio_dropout_high_aux_spec_augment_long": ("", {
        **recipes.PLAIN, **recipes.AUDIO_DROPOUT_HIGH, **recipes.AUX_HEADS,
        **recipes.SPEC_AUGMENT, **recipes.LONG}),
    "audio_dropout_high_aux_cmvn_spec_augment_long": ("", {
        **recipes.PLAIN, **recipes.AUDIO_DROPOUT_HIGH, **recipes.AUX_HEADS,
        **recipes.CMVN, **recipes.SPEC_AUGMENT, **recipes.LONG}),
    # Against a corrupted modality (issue 32), on top of the default recipe
    # (the variant above): corruption augmentation of one modality at a
    # time, alone and with the learned drop decision. Compared with
    # `launch.py --mode=robustness` on the validation speaker (RESULTS.md).
    "default+corruption_augmentation": ("", {
        **recipes.PLAIN, **recipes.DEFAULT,
        **recipes.CORRUPTION_AUGMENTATION}),
    "default+corruption_augmentation+reliability": ("", {
        **recipes.PLAIN, **recipes.DEFAULT,
        **recipes.CORRUPTION_AUGMENTATION, **recipes.RELIABILITY}),
    "default+corruption_augmentation+reliability_tcp": ("", {
        **recipes.PLAIN, **recipes.DEFAULT,
        **recipes.CORRUPTION_AUGMENTATION, **recipes.RELIABILITY_TCP}),
    "default+corruption_augmentation+reliability_tcp+cmn": ("", {
        **recipes.PLAIN, **recipes.DEFAULT,
        **recipes.CORRUPTION_AUGMENTATION, **recipes.RELIABILITY_TCP,
        **recipes.CMN}),
}
UNIMODAL = ("image_only", "audio_only", "image_only_long",
            "audio_only_cmvn_long")

PROTOCOLS = {"selection": {"theo-george": {}}}

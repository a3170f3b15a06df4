"""Classification of your own data, listed in a manifest
(`multimodal_manifest`, see mmjax/data/builders/manifest/).

The modalities are the manifest's modality columns (any of image, audio,
text, video), read from it here, plus audio from the video files'
soundtracks when it has a video column and no audio column and every video
file has one (`mmjax.data.builders.manifest.media.modalities_of`, which
probes their
headers; `data.video_soundtrack`, default True); and the number of classes
its distinct labels:

  --config=configs/manifest.py:manifest=/data/pets/data.csv
  --config=configs/manifest.py:manifest=/data/pets.jsonl,fusion=late_fusion,text=gru
  --config=configs/manifest.py:manifest=/data/clips.csv,video=vivit
  --config=configs/manifest.py:manifest=/data/clips.csv,video_soundtrack=false

`video_soundtrack` is a config argument because it decides the modalities
when the config is built: overriding `--config.data.video_soundtrack`
alone would leave `config.modalities` as they were.

Encoders: image `cnn` on images resized to 64 x 64 at preparation
(`data.image_size`; 0 keeps the files' own size, which they must then
share), audio `spectrogram_cnn` on 1 s (8000 samples at 8000 Hz; longer
recordings are cropped, shorter ones zero-padded), text `bag_of_embeddings`
over a byte-level BPE tokenizer trained on the train split's texts when the
dataset is prepared (`{dataset_dir}/tokenizer`, at most 8,000 tokens, 32
tokens per text), video `frame_encoder` (av_digit_clips' sizes: a per-frame
`cnn` and a one-layer Transformer over time) on videos stored at 8
frames/s, 64 x 64, at most 10 s (`data.frame_rate`, `data.video_size`,
`data.max_video_seconds`): 8 consecutive frames (1 s; a random window in
training, the centred one at evaluation) resized to 32 x 32 in the
pipeline. With a video, `sample_clip` (`pp_*.example`) cuts the same 1 s
window from the audio, so the two stay aligned (an audio file starts at its
first sample, a soundtrack at its video's first frame, like the video).
Changing `data.sample_rate` also needs the audio pp specs'
`pad_or_crop(...)` (or `sample_clip`'s `sample_rate`) and the encoder's
`frontend.sample_rate` changed; changing `data.frame_rate` needs
`sample_clip`'s `frame_rate` and the video encoder's `frame_rate` changed.

Rows may lack modalities (empty cells): the dataset then carries presence
flags that the pipeline turns into the model's presence mask, and
evaluation reports each combination of modalities the examples have
(`accuracy_<subset>`, see mmjax/data/builders/manifest/ and
`mmjax.evaluation.classification.SplitEvaluator.evaluate`); nothing to set
here. Training on fewer modalities than the manifest's: `--config.
modalities="('image', 'audio')"`.

Without a `manifest`, `get_config()` still builds (for the config smoke
tests: modalities `DEFAULT_MODALITIES`, `DEFAULT_NUM_CLASSES` classes), but
launching it fails with an error asking for `manifest=...`.
"""

from typing import Optional, Sequence

import ml_collections

from configs import av_digit_clips
from configs import av_digits
from configs import base
from mmjax.data.builders.manifest import builder as manifest_builder
from mmjax.data.builders.manifest import media as manifest_media
from mmjax.data.builders.manifest import table as manifest_table
from mmjax.models.registries import ENCODERS, FUSION, module_config

DEFAULT_MODALITIES = ("image", "text")
DEFAULT_NUM_CLASSES = 2
IMAGE_SIZE = 64
SAMPLE_RATE = 8000
MAX_TOKENS = 32
VOCAB_SIZE = manifest_builder.VOCAB_SIZE
TOKENIZE = (f'tokenize(tokenizer="{{dataset_dir}}/tokenizer", '
            f"max_length={MAX_TOKENS})")
FRAME_RATE = 8.0  # stored video frames per second
VIDEO_SIZE = 64  # stored frames are VIDEO_SIZE x VIDEO_SIZE
MAX_VIDEO_SECONDS = 10.0
NUM_FRAMES, STRIDE = 8, 1  # sampled: 1 s at 8 frames/s
SAMPLED_FRAME_RATE = FRAME_RATE / STRIDE
FRAME_SIZE = 32  # frames are resized to this in the pipeline

_TEXT_ENCODERS = base.text_encoder_sizes(VOCAB_SIZE, MAX_TOKENS)


def encoder_config(modality: str, name: str) -> ml_collections.ConfigDict:
  """The registered encoder's defaults with sizes for this data: av_digits'
  image and audio sizes (its 8 kHz log-mel front end), a text encoder over
  the prepared tokenizer's vocabulary, and av_digit_clips' video sizes at
  the sampled frame rate."""
  if modality == "text":
    return module_config(ENCODERS, name, **_TEXT_ENCODERS.get(name, {}))
  if modality == "video":
    config = av_digit_clips.encoder_config(name)
    if "frame_rate" in config:
      config.frame_rate = SAMPLED_FRAME_RATE
    return config
  return av_digits.encoder_config(name)


def data_config(manifest: str,
                video_soundtrack: bool = True) -> ml_collections.ConfigDict:
  """The `multimodal_manifest` dataset (see
  mmjax/data/builders/manifest/builder.py)."""
  d = ml_collections.ConfigDict()
  d.name = "multimodal_manifest"
  d.manifest = manifest  # "" fails at launch: a manifest is needed
  d.data_dir = ""  # "" -> $MMJAX_DATA_DIR, else ~/tensorflow_datasets
  d.image_size = IMAGE_SIZE  # 0: keep the images' own (common) size
  d.sample_rate = SAMPLE_RATE
  d.frame_rate = FRAME_RATE
  d.video_size = VIDEO_SIZE
  d.max_video_seconds = MAX_VIDEO_SECONDS
  d.frame_folder_rate = 0.0  # frame folders' images per second; 0: frame_rate
  # Without an audio column: the audio is the videos' soundtracks (when they
  # all have one). Set it with the config argument (it decides modalities).
  d.video_soundtrack = video_soundtrack
  d.split_fractions = (0.8, 0.1, 0.1)  # without a split column, per label
  d.split_seed = 0
  # "skip": rows with a missing or undecodable file are left out (counted in
  # run_info.json and results.json) instead of failing the preparation.
  d.bad_examples = "fail"
  return d


def pp_configs(modalities: Sequence[str]):
  """(pp_train, pp_eval) of `modalities`: images in [0, 1]; audio as float
  in [-1, 1), 1 s long (a random window in training, the middle at
  evaluation); texts tokenized with the dataset's own tokenizer; videos as
  `NUM_FRAMES` frames every `STRIDE`, in [0, 1], `FRAME_SIZE` square. With
  a video, `sample_clip` on the whole example (`example`) cuts both the
  frames' and the audio's window, so the audio's own pp only converts it."""
  video = "video" in modalities

  def pp(mode: str) -> ml_collections.ConfigDict:
    specs = {
        "image": "value_range(0, 1)",
        "audio": ("to_float" if video else
                  f"to_float|pad_or_crop({SAMPLE_RATE}, mode={mode!r})"),
        "text": TOKENIZE,
        "video": f"video_value_range(0, 1)|video_resize({FRAME_SIZE})"}
    specs = {m: specs[m] for m in modalities}
    if video:
      specs["example"] = (
          f"sample_clip({NUM_FRAMES}, {STRIDE}, frame_rate={FRAME_RATE}, "
          f"sample_rate={SAMPLE_RATE}, mode={mode!r})")
    return ml_collections.ConfigDict(specs)
  return pp("random"), pp("center")


def _parse_bool(key: str, value: str) -> bool:
  """"true"/"false" (any case; also 1/0, yes/no) -> bool; else ValueError."""
  words = {"true": True, "1": True, "yes": True,
           "false": False, "0": False, "no": False}
  if value.lower() not in words:
    raise ValueError(f"config argument {key}={value!r}: expected true or "
                     f"false")
  return words[value.lower()]


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The experiment config (locked).

  Args:
    arg: `manifest=<path>,fusion=<block>,image=<encoder>,audio=<encoder>,
      text=<encoder>,video=<encoder>,video_soundtrack=<true|false>` (any
      subset; a bare value is the manifest; the path cannot hold a comma).

  Raises:
    mmjax.data.errors.DataError: for a manifest that is missing or
      malformed (see `mmjax.data.builders.manifest.table.read_manifest`), or,
      with
      soundtracks, a video file that is missing or unreadable or whose
      soundtrack some rows lack (see
      `mmjax.data.builders.manifest.media.modalities_of`).
    ValueError: for a `video_soundtrack` that is not true or false.
  """
  names = base.parse_arg(arg, manifest="", fusion="early_fusion", image="cnn",
                         audio="spectrogram_cnn", text="bag_of_embeddings",
                         video="frame_encoder", video_soundtrack="true")
  soundtrack = _parse_bool("video_soundtrack", names["video_soundtrack"])
  manifest = names["manifest"]
  if manifest:
    parsed = manifest_table.read_manifest(manifest)
    modalities = manifest_media.modalities_of(parsed, soundtrack)
    num_classes = len(parsed.labels)
    manifest = str(parsed.path)  # Absolute: the run may start elsewhere.
  else:
    modalities, num_classes = DEFAULT_MODALITIES, DEFAULT_NUM_CLASSES
  c = ml_collections.ConfigDict()
  c.modalities = modalities
  c.data = data_config(manifest, soundtrack)
  c.pp_train, c.pp_eval = pp_configs(modalities)
  c.model = ml_collections.ConfigDict()
  c.model.num_classes = num_classes
  c.model.encoders = ml_collections.ConfigDict(
      {m: encoder_config(m, names[m]) for m in modalities})
  c.model.fusion = module_config(FUSION, names["fusion"])
  if "dropout_rate" in c.model.fusion:
    c.model.fusion.dropout_rate = 0.2
  base.training_recipe(c)
  base.modality_balancing(c)
  c.lock()
  return c

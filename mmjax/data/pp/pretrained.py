"""Preprocessing ops that reproduce a Hugging Face checkpoint's own tokenizer
and image processor inside tf.data, offline.

Registered into `mmjax.data.pp.registry.OPS` (see there for the op contract
`fn(x, seed) -> x`):

  * `tokenize(tokenizer, max_length[, key, pair_key])`: one UTF-8 text
    (scalar tf.string), or a pair of texts from a dict (BERT's sentence
    pairs) -> `{"token_ids", "token_mask"[, "token_type_ids"]}`, the input
    of the `text_transformer` encoder, tokenized by the checkpoint's own
    tokenizer (`transformers.AutoTokenizer`, run on the host through
    `tf.numpy_function`).
  * `hf_image_preprocess(checkpoint)`: a uint8 image `[h, w, c]` -> float32
    pixels as the checkpoint's `ViTImageProcessor` / `CLIPImageProcessor`
    make them (resize, center crop, rescale, normalize): the resize calls
    Pillow on the host (`tf.numpy_function`) as the processors do, since
    `tf.image.resize` differs from Pillow's 8-bit resampling by up to
    several uint8 levels; the rest is TensorFlow.

Both read only local directories (as written by `save_pretrained`): nothing
is downloaded.
"""

import json
import pathlib
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import PIL.Image
import tensorflow as tf

from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS


def _directory(path: str, op: str, what: str) -> pathlib.Path:
  directory = pathlib.Path(path).expanduser()
  if not directory.is_dir():
    raise ValueError(f"{op}: {str(path)!r} is not a directory; expected a "
                     f"local Hugging Face directory with {what} (as written "
                     f"by `save_pretrained`)")
  return directory


# Text.


@OPS.register("tokenize")
def tokenize(tokenizer: str, max_length: int, key: Optional[str] = None,
             pair_key: Optional[str] = None) -> Op:
  """Tokenizes one text, or a pair of texts, with a Hugging Face tokenizer,
  padded to `max_length`.

  The tokenizer is loaded once, when the op is built, with
  `transformers.AutoTokenizer.from_pretrained(tokenizer,
  local_files_only=True)`; each example is then encoded exactly as
  `tokenizer(text, padding="max_length", truncation=True,
  max_length=max_length)`, or `tokenizer(text, text_pair, ...)` for a pair:
  the tokenizer's own special tokens ([CLS] ... [SEP] for BERT,
  [CLS] a [SEP] b [SEP] with token types 0 then 1 for a BERT pair,
  <|startoftext|> ... <|endoftext|> for CLIP), truncation that keeps them
  (for a pair, "longest_first": one token at a time from the longer text),
  and right padding with its pad id. This is the input of the
  `text_transformer` encoder (`mmjax.models.encoders.text`); its
  `max_length` must be at least this one.

  Encoding runs in Python on the host (`tf.numpy_function`), serialised by a
  lock: a Hugging Face fast tokenizer sets its truncation and padding on
  every call, which can fail ("Already borrowed") when tf.data's parallel
  threads call it at once. tf.data's parallel map still overlaps it with
  the other ops.

  Args:
    tokenizer: local directory of a Hugging Face tokenizer
      (`tokenizer.json` or vocabulary files, with `tokenizer_config.json`).
    max_length: tokens per example, special tokens included; >= 1.
    key: the input is a dict (e.g. a modality feature `{"premise",
      "hypothesis"}`) and the text is its scalar tf.string `key`; None: the
      input is the text itself.
    pair_key: the dict's key of the second text of a pair (needs `key`).

  Returns:
    `fn(x, seed)` mapping a scalar tf.string (UTF-8; invalid UTF-8 fails
    at run time), or the dict with `key` (and `pair_key`), to
    `{"token_ids": int32 [max_length], "token_mask": bool [max_length] (True
    = real token), "token_type_ids": int32 [max_length]}`, the last only for
    tokenizers that return token types (BERT's: 0 for the first text and its
    special tokens, 1 for the second and its [SEP], 0 for padding). `seed`
    is unused.

  Raises:
    ValueError: if `tokenizer` is not a directory or holds no loadable
      tokenizer, the tokenizer has no pad token, `max_length` is not a
      positive int, `pair_key` is given without `key`, or (when the op is
      applied) the input is not a scalar string, or not a dict with the
      keys' scalar strings.
  """
  if isinstance(max_length, bool) or not isinstance(max_length, int) \
      or max_length < 1:
    raise ValueError(f"tokenize: max_length must be an int >= 1, got "
                     f"{max_length!r}")
  if pair_key is not None and key is None:
    raise ValueError(f"tokenize: pair_key={pair_key!r} needs key, the dict "
                     f"key of the first text (e.g. tokenize(..., "
                     f"key='premise', pair_key='hypothesis'))")
  directory = _directory(tokenizer, "tokenize",
                         "a tokenizer (tokenizer.json or vocabulary files, "
                         "and tokenizer_config.json)")
  import transformers  # pylint: disable=g-import-not-at-top  (heavy; only here)
  try:
    hf = transformers.AutoTokenizer.from_pretrained(str(directory),
                                                    local_files_only=True)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"tokenize: cannot load a Hugging Face tokenizer from "
                     f"{str(directory)!r}: {e}") from e
  if hf.pad_token is None:
    raise ValueError(f"tokenize: the tokenizer in {str(directory)!r} has no "
                     f"pad token, so it cannot pad to max_length; set "
                     f"`pad_token` and save it again")
  lock = threading.Lock()

  def encode(*texts: str) -> Dict[str, List[int]]:
    with lock:
      return hf(*texts, padding="max_length", truncation=True,
                max_length=max_length)

  with_types = "token_type_ids" in encode("")
  out_types = [tf.int32, tf.bool] + ([tf.int32] if with_types else [])

  def encode_bytes(*texts) -> Tuple[np.ndarray, ...]:
    texts = [t.item() if isinstance(t, np.ndarray) else t for t in texts]
    encoded = encode(*(t.decode("utf-8") for t in texts))
    ids = np.asarray(encoded["input_ids"], np.int32)
    if ids.shape != (max_length,):  # A tokenizer that ignored max_length.
      raise ValueError(f"tokenize: {str(directory)!r} returned "
                       f"{ids.shape[0]} tokens, not max_length={max_length}")
    out = [ids, np.asarray(encoded["attention_mask"], bool)]
    if with_types:
      out.append(np.asarray(encoded["token_type_ids"], np.int32))
    return tuple(out)

  keys = [k for k in (key, pair_key) if k is not None]

  def texts_of(x) -> List[tf.Tensor]:
    if not keys:
      return [tf.convert_to_tensor(x)]
    if not isinstance(x, Mapping) or any(k not in x for k in keys):
      got = sorted(x) if isinstance(x, Mapping) else (
          f"{tf.convert_to_tensor(x).dtype.name} of shape "
          f"{tf.convert_to_tensor(x).shape}")
      raise ValueError(f"tokenize(key={key!r}, pair_key={pair_key!r}) "
                       f"expects a dict with the keys {keys}, got {got}")
    return [tf.convert_to_tensor(x[k]) for k in keys]

  def op(x, seed):
    del seed
    texts = texts_of(x)
    for name, t in zip(keys or ["the input"], texts):
      if t.dtype != tf.string or t.shape.rank not in (None, 0):
        raise ValueError(f"tokenize expects one text, a scalar tf.string, "
                         f"for {name}; got {t.dtype.name} of shape {t.shape}")
    outs = tf.numpy_function(encode_bytes, texts, out_types, stateful=False,
                             name="tokenize")
    for t in outs:
      t.set_shape([max_length])
    result = {"token_ids": outs[0], "token_mask": outs[1]}
    if with_types:
      result["token_type_ids"] = outs[2]
    return result
  return op


# Images.

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The defaults of the Hugging Face processor classes (transformers 5:
# models/{vit,clip}/image_processing_pil_*.py), for keys a
# preprocessor_config.json leaves out or sets to null.
_PROCESSOR_DEFAULTS = {
    "ViTImageProcessor": {
        "do_resize": True, "size": {"height": 224, "width": 224},
        "resample": 2, "do_center_crop": False, "crop_size": None,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5),
        "do_convert_rgb": False, "default_to_square": True},
    "CLIPImageProcessor": {
        "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD,
        "do_convert_rgb": True, "default_to_square": False},
}

# Pillow's resampling filters by their `PIL.Image.Resampling` value (the
# `resample` of a preprocessor config).
_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic",
                   4: "box", 5: "hamming"}


def _size_dict(size: Any, default_to_square: bool, key: str,
               path: pathlib.Path) -> Dict[str, int]:
  """`size` as Hugging Face's `get_size_dict` normalises it."""
  if isinstance(size, Mapping):
    size = {k: v for k, v in size.items() if v is not None}
    if set(size) in ({"height", "width"}, {"shortest_edge"}):
      return {k: int(v) for k, v in size.items()}
  elif isinstance(size, int) and not isinstance(size, bool):
    return ({"height": size, "width": size} if default_to_square
            else {"shortest_edge": size})
  elif isinstance(size, (list, tuple)) and len(size) == 2:
    return {"height": int(size[0]), "width": int(size[1])}
  raise ValueError(f"hf_image_preprocess: {path}: {key}={size!r} is not "
                   f"supported (supported: {{'height', 'width'}}, "
                   f"{{'shortest_edge'}} or an int)")


def load_image_processor_config(checkpoint: str) -> Dict[str, Any]:
  """The resolved image-processing settings of a checkpoint directory.

  Reads `preprocessor_config.json`, fills the keys it leaves out (or sets to
  null) with its processor class's defaults, and normalises `size` and
  `crop_size` to dicts as `transformers` does.

  Args:
    checkpoint: local directory holding `preprocessor_config.json`.

  Returns:
    `{"processor", "do_resize", "size", "resample", "do_center_crop",
    "crop_size", "do_rescale", "rescale_factor", "do_normalize",
    "image_mean", "image_std", "do_convert_rgb"}`.

  Raises:
    ValueError: for a missing directory or file, a processor other than
      ViTImageProcessor / CLIPImageProcessor (also their Fast / Pil
      variants and the legacy *FeatureExtractor names), an unsupported
      `size`, `crop_size` or `resample`, or `do_pad`.
  """
  directory = _directory(checkpoint, "hf_image_preprocess",
                         "preprocessor_config.json")
  path = directory / "preprocessor_config.json"
  if not path.is_file():
    raise ValueError(f"hf_image_preprocess: {str(directory)!r} has no "
                     f"preprocessor_config.json (the image processor's "
                     f"settings, written by its `save_pretrained`)")
  raw = json.loads(path.read_text())
  name = raw.get("image_processor_type") or raw.get(
      "feature_extractor_type", "")
  name = name.replace("FeatureExtractor", "ImageProcessor")
  for suffix in ("Fast", "Pil"):
    name = name[:-len(suffix)] if name.endswith(suffix) else name
  if name not in _PROCESSOR_DEFAULTS:
    raise ValueError(f"hf_image_preprocess: {path}: image processor "
                     f"{name or None!r} is not supported (supported: "
                     f"{sorted(_PROCESSOR_DEFAULTS)})")
  if raw.get("do_pad"):
    raise ValueError(f"hf_image_preprocess: {path}: do_pad is not supported")
  config = dict(_PROCESSOR_DEFAULTS[name])
  config.update({k: v for k, v in raw.items()
                 if k in config and v is not None})
  config["processor"] = name
  if name == "CLIPImageProcessor" and raw.get("use_square_size"):
    edge = _size_dict(config["size"], False, "size", path)["shortest_edge"]
    config["size"] = {"height": edge, "width": edge}
  config["size"] = _size_dict(config["size"], config.pop("default_to_square"),
                              "size", path)
  if config["do_center_crop"]:
    config["crop_size"] = _size_dict(config["crop_size"], True, "crop_size",
                                     path)
  if config["resample"] not in _RESAMPLE_NAMES:
    raise ValueError(f"hf_image_preprocess: {path}: resample="
                     f"{config['resample']!r} is not supported (supported: "
                     f"{_RESAMPLE_NAMES})")
  return config


def _shortest_edge_size(height: int, width: int, edge: int) -> Tuple[int, int]:
  """transformers' `get_resize_output_image_size(default_to_square=False)`:
  the short side becomes `edge`, the long one `int(edge * long / short)`."""
  short, long = (width, height) if width <= height else (height, width)
  new_long = int(edge * long / short)
  return (new_long, edge) if width <= height else (edge, new_long)


def _pil_resize(image: np.ndarray, height: int, width: int,
                resample: int) -> np.ndarray:
  """transformers' `image_transforms.resize` of a uint8 `[h, w, c]` array:
  Pillow's `Image.resize` of `PIL.Image.fromarray` (a 1-channel image as
  mode "L"), to uint8 `[height, width, c]`."""
  pil = PIL.Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((width, height),
                              resample=PIL.Image.Resampling(resample)))
  return out[..., None] if out.ndim == 2 else out


def _center_crop(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """transformers' numpy `center_crop`: crops from offset `(size - crop) //
  2`, and zero-pads a side shorter than the crop (`ceil` of the excess
  before, the rest after)."""
  shape = tf.shape(x)
  paddings, starts = [], []
  for size, target in ((shape[0], height), (shape[1], width)):
    before = tf.maximum(target - size + 1, 0) // 2
    after = tf.maximum(target - size, 0) - before
    paddings.append([before, after])
    starts.append(tf.maximum(size - target, 0) // 2)
  x = tf.pad(x, paddings + [[0, 0]])
  return x[starts[0]:starts[0] + height, starts[1]:starts[1] + width]


@OPS.register("hf_image_preprocess")
def hf_image_preprocess(checkpoint: str) -> Op:
  """The image preprocessing of a Hugging Face checkpoint, in tf.data.

  Reads `preprocessor_config.json` of the local directory `checkpoint`
  (`ViTImageProcessor` or `CLIPImageProcessor`, see
  `load_image_processor_config`) and applies, in the processor's order:
    1. convert to RGB: a 1-channel image is repeated to 3 channels when the
       processor normalises 3 channels (for ViT, whose processor would
       instead fail on a grayscale array); with CLIP's `do_convert_rgb`, a
       4-channel RGBA image is composited onto white;
    2. `do_resize`: to `size` = `{"height", "width"}` (ViT) or, for
       `{"shortest_edge"}` (CLIP), the short side to that length and the
       long side to `int(edge * long / short)`, by Pillow itself on uint8
       (`PIL.Image.fromarray(x).resize((w, h), resample)`, as transformers'
       `image_transforms.resize`; on the host through `tf.numpy_function`);
    3. `do_center_crop`: to `crop_size`, zero-padding a smaller image;
    4. `do_rescale`: times `rescale_factor` (in float64, then float32);
    5. `do_normalize`: `(x - image_mean) / image_std` in float32.
  Against the processor itself (its PIL / numpy backend,
  `AutoImageProcessor.from_pretrained(checkpoint, backend="pil")`, the
  default without torchvision) the output is bit-exact, for every
  `resample`. The torchvision backend resizes differently and is not
  reproduced.

  Unlike the processor's channels-first `pixel_values` `[c, h, w]`, the
  output is channels-last, as mmjax's image encoders take it.

  Args:
    checkpoint: local directory with `preprocessor_config.json`.

  Returns:
    `fn(image, seed)` mapping uint8 `[h, w, c]` (c = 1, 3, or 4 with
    `do_convert_rgb`; static) to float32 `[crop_h, crop_w, 3]` with center
    crop, `[size_h, size_w, 3]` with a fixed-size resize and no crop, else
    of the image's resized size (static where the image's size is). `seed`
    is unused.

  Raises:
    ValueError: see `load_image_processor_config`; and, when applied, for
      an image that is not uint8 `[h, w, c]` with a static channel count
      that fits `image_mean`.
  """
  config = load_image_processor_config(checkpoint)
  mean = np.asarray(config["image_mean"], np.float32).reshape(-1)
  std = np.asarray(config["image_std"], np.float32).reshape(-1)
  if config["do_normalize"] and not np.all(std != 0):
    raise ValueError(f"hf_image_preprocess({checkpoint!r}): image_std "
                     f"{std.tolist()} has a zero")

  size = config["size"]

  def resized_size(height: Optional[int],
                   width: Optional[int]) -> List[Optional[int]]:
    """The resize's output (height, width); None where it depends on an
    unknown input size."""
    if "height" in size:
      return [size["height"], size["width"]]
    if height is None or width is None:
      return [None, None]
    return list(_shortest_edge_size(height, width, size["shortest_edge"]))

  def resize(image: np.ndarray) -> np.ndarray:
    height, width = resized_size(*image.shape[:2])
    return _pil_resize(image, height, width, config["resample"])

  def op(x, seed):
    del seed
    x = tf.convert_to_tensor(x)
    channels = x.shape[-1] if x.shape.rank == 3 else None
    if x.dtype != tf.uint8 or channels is None:
      raise ValueError(f"hf_image_preprocess({checkpoint!r}) expects a uint8 "
                       f"image [height, width, channels] with a static "
                       f"channel count; got {x.dtype.name} of shape "
                       f"{x.shape}")
    if channels == 4 and config["do_convert_rgb"]:
      rgb, alpha = tf.cast(x[..., :3], tf.float64), tf.cast(x[..., 3:],
                                                            tf.float64)
      # Should grappler make this a multiplication by 1 / 255, the rounded
      # composite is still numpy's, for each of the 256 x 256 alpha/value.
      alpha = alpha / 255.0
      x = tf.cast(tf.round(alpha * rgb + (1.0 - alpha) * 255.0), tf.uint8)
      channels = 3
    if channels == 1 and mean.size == 3:
      x = tf.tile(x, [1, 1, 3])
      channels = 3
    if mean.size not in (1, channels) or std.size not in (1, channels):
      raise ValueError(f"hf_image_preprocess({checkpoint!r}): a {channels}-"
                       f"channel image does not fit image_mean "
                       f"{mean.tolist()} / image_std {std.tolist()}")
    if config["do_resize"]:
      out_size = resized_size(x.shape[0], x.shape[1])
      x = tf.numpy_function(resize, [x], tf.uint8, stateful=False,
                            name="hf_image_resize")
      x.set_shape(out_size + [channels])
    if config["do_center_crop"]:
      crop = config["crop_size"]
      x = _center_crop(x, crop["height"], crop["width"])
      x.set_shape([crop["height"], crop["width"], channels])
    if config["do_rescale"]:
      x = tf.cast(tf.cast(x, tf.float64) * config["rescale_factor"],
                  tf.float32)
    else:
      x = tf.cast(x, tf.float32)
    if config["do_normalize"]:
      # Not `/`: grappler rewrites a division by a constant into a
      # multiplication by its reciprocal, which can be one float32 ulp off
      # numpy's division; it leaves `divide_no_nan` a division (std != 0).
      x = tf.math.divide_no_nan(x - tf.constant(mean), tf.constant(std))
    return x
  return op

"""The `tokenize` and `hf_image_preprocess` preprocessing ops against the
Hugging Face tokenizers and image processors they reproduce, on tiny
checkpoints built offline."""

import functools
import json

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from mmjax.data import pipeline
from mmjax.data.pp import builder
from mmjax.data.pp import pretrained
from tests.data import tiny_tokenizers

transformers = pytest.importorskip("transformers")

SEED = tf.constant([1, 2], tf.int64)
TOKENIZERS = {"bert": tiny_tokenizers.build_bert_tokenizer,
              "clip": tiny_tokenizers.build_clip_tokenizer}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  """`{name: directory}` of the tiny saved tokenizers, built on first use."""
  built = {}

  def get(name):
    if name not in built:
      built[name] = tmp_path_factory.mktemp(f"tok_{name}")
      TOKENIZERS[name](built[name])
    return built[name]
  return get


def hf_tokenizer(directory):
  return transformers.AutoTokenizer.from_pretrained(str(directory),
                                                    local_files_only=True)


def reference_tokens(directory, texts, max_length):
  """The op's expected output for `texts`: the Hugging Face tokenizer's."""
  enc = hf_tokenizer(directory)(list(texts), padding="max_length",
                                truncation=True, max_length=max_length)
  out = {"token_ids": np.asarray(enc["input_ids"], np.int32),
         "token_mask": np.asarray(enc["attention_mask"], bool)}
  if "token_type_ids" in enc:
    out["token_type_ids"] = np.asarray(enc["token_type_ids"], np.int32)
  return out


@pytest.mark.parametrize("max_length", [6, 40])
@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_tokenize_equals_hf_tokenizer(tokenizer_dir, name, max_length):
  directory = tokenizer_dir(name)
  op = pretrained.tokenize(str(directory), max_length)
  want = reference_tokens(directory, tiny_tokenizers.TEXTS, max_length)
  hf = hf_tokenizer(directory)
  lengths = [len(hf(t)["input_ids"]) for t in tiny_tokenizers.TEXTS]
  assert min(lengths) < max_length < max(lengths), lengths
  assert set(want) == ({"token_ids", "token_mask", "token_type_ids"}
                       if name == "bert" else {"token_ids", "token_mask"})
  for i, text in enumerate(tiny_tokenizers.TEXTS):
    got = op(tf.constant(text), SEED)
    assert set(got) == set(want), text
    for key, value in got.items():
      assert value.shape == (max_length,) and value.dtype == want[key].dtype
      np.testing.assert_array_equal(value.numpy(), want[key][i],
                                    err_msg=f"{name} {key} of {text!r}")


def test_tokenize_uses_the_tokenizers_own_special_tokens(tokenizer_dir):
  for name, (first, last) in {"bert": ("[CLS]", "[SEP]"),
                              "clip": ("<|startoftext|>",
                                       "<|endoftext|>")}.items():
    directory = tokenizer_dir(name)
    hf = hf_tokenizer(directory)
    got = pretrained.tokenize(str(directory), 8)(tf.constant("fox"), SEED)
    ids = got["token_ids"].numpy()[got["token_mask"].numpy()]
    tokens = hf.convert_ids_to_tokens(ids.tolist())
    assert tokens[0] == first and tokens[-1] == last, tokens
    assert (got["token_ids"].numpy()[~got["token_mask"].numpy()]
            == hf.pad_token_id).all()


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_tokenize_in_a_parallel_dataset_map_then_batched(tokenizer_dir, name):
  directory = tokenizer_dir(name)
  op = builder.parse(f"tokenize({str(directory)!r}, 12)")
  texts = tiny_tokenizers.TEXTS * 3
  ds = tf.data.Dataset.from_tensor_slices(list(texts)).map(
      lambda t: op(t, SEED), num_parallel_calls=4, deterministic=True)
  batches = list(ds.batch(5).as_numpy_iterator())
  assert {k: tuple(v.shape) for k, v in ds.element_spec.items()} == {
      k: (12,) for k in batches[0]}
  want = reference_tokens(directory, texts, 12)
  for key, value in want.items():
    got = np.concatenate([b[key] for b in batches])
    np.testing.assert_array_equal(got, value, err_msg=key)


def test_tokenize_errors(tokenizer_dir, tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(ValueError, match="nowhere.*not a directory.*tokenizer"):
    pretrained.tokenize(str(missing), 8)
  with pytest.raises(ValueError, match="nowhere"):
    builder.parse(f"tokenize({str(missing)!r}, 8)")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="cannot load"):
    pretrained.tokenize(str(tmp_path / "empty"), 8)
  with pytest.raises(ValueError, match="max_length"):
    pretrained.tokenize(str(tokenizer_dir("bert")), 0)
  op = pretrained.tokenize(str(tokenizer_dir("bert")), 8)
  with pytest.raises(ValueError, match="scalar tf.string"):
    op(tf.constant(["two", "texts"]), SEED)
  with pytest.raises(ValueError, match="scalar tf.string"):
    op(tf.constant(3), SEED)


class FakeBuilder:
  """Just what `pipeline` reads of a TFDS builder: a text + label dataset."""

  def __init__(self, texts):
    self._texts = list(texts)
    split = type("Split", (), {"num_examples": len(self._texts)})()
    self.info = type("Info", (), {"splits": {"train": split,
                                             "validation": split},
                                  "features": {"text": None, "label": None}})()

  def as_dataset(self, split, shuffle_files, read_config):
    del split, shuffle_files, read_config
    return tf.data.Dataset.from_tensor_slices(
        {"text": self._texts, "label": np.arange(len(self._texts)) % 3})


def test_pipeline_and_loop_shapes_with_a_dict_valued_modality(tokenizer_dir):
  """A text modality is a dict of tensors: the pipeline batches it (with
  zero padding examples in eval) and `_example_shapes` describes it."""
  from mmjax.train import loop  # pylint: disable=g-import-not-at-top
  spec = f"tokenize({str(tokenizer_dir('bert'))!r}, 10)"
  builder = FakeBuilder(tiny_tokenizers.TEXTS)
  train = next(pipeline.train_batches(
      builder, "train", modalities=("text",), pp={"text": spec},
      global_batch_size=4, seed=0))
  assert {k: (v.shape, v.dtype) for k, v in train["text"].items()} == {
      "token_ids": ((4, 10), np.int32), "token_mask": ((4, 10), bool),
      "token_type_ids": ((4, 10), np.int32)}
  ds, num_batches = pipeline.eval_batches(
      builder, "validation", modalities=("text",), pp={"text": spec},
      global_batch_size=4)
  batches = list(ds.as_numpy_iterator())
  n = len(tiny_tokenizers.TEXTS)
  assert len(batches) == num_batches == -(-n // 4)
  mask = np.concatenate([b["mask"] for b in batches])
  token_mask = np.concatenate([b["text"]["token_mask"] for b in batches])
  np.testing.assert_array_equal(mask, np.arange(len(mask)) < n)
  assert len(mask) > n and not token_mask[n:].any()
  config = ml_collections.ConfigDict({
      "eval_splits": ["validation"], "modalities": ["text"],
      "pp_eval": {"text": spec}, "eval_batch_size": 4, "batch_size": 8})
  shapes = loop._example_shapes(builder, config)  # pylint: disable=protected-access
  assert shapes == {"text": {
      "token_ids": jax.ShapeDtypeStruct((8, 10), np.int32),
      "token_mask": jax.ShapeDtypeStruct((8, 10), bool),
      "token_type_ids": jax.ShapeDtypeStruct((8, 10), np.int32)}}


# Images.


def write_config(directory, **config):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "preprocessor_config.json").write_text(json.dumps(config))
  return directory


def vit_config(**overrides):
  """A ViT preprocessor config as `ViTImageProcessor.save_pretrained`
  writes it (an 18x14 resize instead of 224x224)."""
  return {"image_processor_type": "ViTImageProcessor", "do_resize": True,
          "size": {"height": 18, "width": 14}, "resample": 2,
          "do_rescale": True, "rescale_factor": 1 / 255,
          "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
          "image_std": [0.5, 0.5, 0.5], **overrides}


def clip_config(**overrides):
  """A CLIP preprocessor config in the legacy format of OpenAI's hub
  checkpoints (int sizes, `feature_extractor_type`), at 20 / 16 pixels
  instead of 224 / 224."""
  return {"feature_extractor_type": "CLIPFeatureExtractor",
          "do_resize": True, "size": 20, "resample": 3,
          "do_center_crop": True, "crop_size": 16, "do_normalize": True,
          "image_mean": list(pretrained.OPENAI_CLIP_MEAN),
          "image_std": list(pretrained.OPENAI_CLIP_STD),
          **overrides}


CONFIGS = {"vit": vit_config, "clip": clip_config}
# (height, width): shrinking, growing, mixed, tall, wide, tiny and odd,
# smaller than CLIP's crop.
IMAGE_SIZES = ((40, 33), (9, 7), (12, 60), (97, 21), (23, 120), (1, 3),
               (15, 10), (207, 72))


@functools.lru_cache(maxsize=None)
def hf_processor(directory):
  """The Hugging Face processor (PIL / numpy backend) saved in `directory`
  (a str; loaded once)."""
  processor = transformers.AutoImageProcessor.from_pretrained(
      directory, backend="pil")
  assert processor.backend == "pil"
  return processor


def hf_pixels(directory, image):
  """The Hugging Face processor's output, channels last."""
  out = hf_processor(str(directory))(image, return_tensors="np",
                                     input_data_format="channels_last"
                                     )["pixel_values"][0]
  return np.moveaxis(out, 0, -1)


_TRACED = {}


def run_image_op(directory, image):
  """The op in graph mode on an image of unknown height and width, as in
  tf.data (traced once per directory and channel count)."""
  key = (str(directory), image.shape[-1])
  if key not in _TRACED:
    op = pretrained.hf_image_preprocess(str(directory))
    _TRACED[key] = tf.function(op, input_signature=[
        tf.TensorSpec([None, None, image.shape[-1]], tf.uint8),
        tf.TensorSpec([2], tf.int64)])
  return _TRACED[key](image, SEED).numpy()


def random_image(shape, seed):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_image_without_resize_is_bit_exact(tmp_path, name):
  """Crop (with zero padding of small images), rescale and normalize."""
  directory = write_config(tmp_path, **CONFIGS[name](do_resize=False))
  for i, (h, w) in enumerate(IMAGE_SIZES):
    image = random_image((h, w, 3), i)
    got = run_image_op(directory, image)
    np.testing.assert_array_equal(got, hf_pixels(directory, image),
                                  err_msg=str((h, w)))
    assert got.dtype == np.float32


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_image_with_resize_is_bit_exact(tmp_path, name):
  """Every Pillow filter (`resample`), each on half of the sizes."""
  for resample in range(6):
    directory = write_config(tmp_path / str(resample),
                             **CONFIGS[name](resample=resample))
    for i, (h, w) in enumerate(IMAGE_SIZES[resample % 2::2]):
      image = random_image((h, w, 3), 100 + i)
      got = run_image_op(directory, image)
      np.testing.assert_array_equal(got, hf_pixels(directory, image),
                                    err_msg=str((h, w, resample)))


def test_shortest_edge_resize_shape_is_static_where_the_image_size_is(
    tmp_path):
  """CLIP's resize without a crop: `int(20 * 40 / 33)` = 24 rows."""
  directory = write_config(tmp_path, **clip_config(do_center_crop=False))
  op = pretrained.hf_image_preprocess(str(directory))
  image = random_image((40, 33, 3), 4)
  for shape, want in (([40, 33, 3], [24, 20, 3]), ([None, None, 3],
                                                   [None, None, 3])):
    traced = tf.function(op).get_concrete_function(
        tf.TensorSpec(shape, tf.uint8), SEED)
    assert traced.output_shapes.as_list() == want
    got = traced(tf.constant(image), SEED).numpy()
    np.testing.assert_array_equal(got, hf_pixels(directory, image))


def test_saved_processors_are_read_like_transformers(tmp_path):
  """Configs written by the processors' own `save_pretrained` (transformers
  5: the PIL-backend classes), resolved with the class defaults."""
  vit = transformers.ViTImageProcessorPil(size={"height": 12, "width": 12})
  vit.save_pretrained(str(tmp_path / "vit"))
  clip = transformers.CLIPImageProcessorPil(
      size={"shortest_edge": 14}, crop_size={"height": 12, "width": 12})
  clip.save_pretrained(str(tmp_path / "clip"))
  config = pretrained.load_image_processor_config(str(tmp_path / "clip"))
  assert config["size"] == {"shortest_edge": 14} and config["resample"] == 3
  assert config["crop_size"] == {"height": 12, "width": 12}
  assert not pretrained.load_image_processor_config(
      str(tmp_path / "vit"))["do_center_crop"]
  for name in ("vit", "clip"):
    image = random_image((31, 26, 3), 7)
    got = run_image_op(tmp_path / name, image)
    assert got.shape == (12, 12, 3)
    np.testing.assert_array_equal(got, hf_pixels(tmp_path / name, image))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_grayscale_is_repeated_to_three_channels(tmp_path, name):
  """CLIP's processor converts a 1-channel array to RGB by repeating it;
  ViT's would fail on it, so the op repeats the channel for it too."""
  directory = write_config(tmp_path, **CONFIGS[name]())
  gray = random_image((29, 35, 1), 3)
  got = run_image_op(directory, gray)
  assert got.shape[-1] == 3
  reference = gray if name == "clip" else np.repeat(gray, 3, axis=-1)
  np.testing.assert_array_equal(got, hf_pixels(directory, reference))
  np.testing.assert_array_equal(got, run_image_op(
      directory, np.repeat(gray, 3, axis=-1)))


def test_rgba_is_composited_onto_white_for_clip(tmp_path):
  directory = write_config(tmp_path, **clip_config(do_resize=False))
  rgba = random_image((18, 21, 4), 5)
  np.testing.assert_array_equal(run_image_op(directory, rgba),
                                hf_pixels(directory, rgba))


def test_image_op_in_a_dataset_map_then_batched(tmp_path):
  directory = write_config(tmp_path, **clip_config())
  images = [random_image((h, w, 3), i) for i, (h, w) in enumerate(IMAGE_SIZES)]
  op = builder.parse(f"hf_image_preprocess({str(directory)!r})")
  ds = tf.data.Dataset.from_generator(
      lambda: iter(images),
      output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
  ds = ds.map(lambda x: op(x, SEED), num_parallel_calls=4, deterministic=True)
  assert ds.element_spec.shape == (16, 16, 3)
  got = np.concatenate(list(ds.batch(3).as_numpy_iterator()))
  want = np.stack([hf_pixels(directory, image) for image in images])
  assert got.shape == (len(images), 16, 16, 3)
  np.testing.assert_array_equal(got, want)


def test_image_op_errors(tmp_path):
  with pytest.raises(ValueError, match="nowhere.*not a directory"):
    pretrained.hf_image_preprocess(str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no preprocessor_config.json"):
    pretrained.hf_image_preprocess(str(tmp_path / "empty"))
  other = write_config(tmp_path / "detr",
                       image_processor_type="DetrImageProcessor")
  with pytest.raises(ValueError, match="DetrImageProcessor.*not supported"):
    pretrained.hf_image_preprocess(str(other))
  for key, value in (("resample", 6), ("size", {"longest_edge": 20}),
                     ("do_pad", True)):
    bad = write_config(tmp_path / key, **vit_config(**{key: value}))
    with pytest.raises(ValueError, match=key):
      pretrained.hf_image_preprocess(str(bad))
  op = pretrained.hf_image_preprocess(
      str(write_config(tmp_path / "vit", **vit_config())))
  with pytest.raises(ValueError, match="uint8"):
    op(tf.zeros([8, 8, 3], tf.float32), SEED)
  with pytest.raises(ValueError, match="4-channel"):
    op(tf.zeros([8, 8, 4], tf.uint8), SEED)

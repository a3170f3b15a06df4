"""A complete pretrained CLIP (`mmjax.pretrained.clip`): strings and uint8
pictures -> the checkpoint's tokenizer and image processor (pp ops) -> the
contrastive model with both towers, both projections and the logit scale
loaded from a tiny random `CLIPModel` directory, against
`transformers.CLIPModel` on the same strings and pictures: the projected,
L2-normalised embeddings and the logit matrix within 1e-4 (float32).

Mutations of the head mapping (a projection read without its transpose, the
logit scale not exponentiated) must break that parity; the training path
(`config.model.init_from` in the loop's initialisation) loads the same
parameters, and the contrastive loss has gradients for all of them.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmjax.models.contrastive import ContrastiveModel, build_contrastive_model
from mmjax.objectives.contrastive import contrastive_loss
from mmjax.pretrained import clip
from mmjax.train import loop
from tests.pretrained import clip_checkpoint

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

PARITY_ATOL = 1e-4
TEXTS = ("a photo of a cat", "dog", "", "the quick brown fox jumps over the "
         "lazy dog again and again")  # the last one is truncated


@pytest.fixture(scope="module")
def checkpoint(tiny_clip_dir):
  return tiny_clip_dir


def pictures():
  """uint8 RGB pictures of three sizes (resized and cropped to 32 x 32)."""
  rng = np.random.default_rng(0)
  return [rng.integers(0, 256, shape, dtype=np.uint8)
          for shape in ((40, 50, 3), (32, 32, 3), (64, 30, 3))]


@pytest.fixture(scope="module")
def reference(checkpoint):
  """`transformers.CLIPModel`'s embeddings and logits on `pictures()` and
  `TEXTS`, through its own processor and tokenizer."""
  model = transformers.CLIPModel.from_pretrained(str(checkpoint)).eval()
  processor = transformers.CLIPImageProcessor.from_pretrained(str(checkpoint))
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
  tokens = tokenizer(list(TEXTS), padding="max_length", truncation=True,
                     max_length=clip_checkpoint.MAX_LENGTH, return_tensors="pt")
  with torch.no_grad():
    out = model(input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
                pixel_values=processor(pictures(),
                                       return_tensors="pt")["pixel_values"])
  return {"image": out.image_embeds.numpy(), "text": out.text_embeds.numpy(),
          "logits": out.logits_per_image.numpy()}


def max_differences(checkpoint, reference):
  """`{"image", "text", "logits"}`: max abs difference of mmjax's user path
  from `reference`."""
  loaded = clip.load_clip(str(checkpoint))
  images = clip.embed(loaded, clip.preprocess_images(str(checkpoint),
                                                     pictures()), "image")
  texts = clip.embed(loaded, clip.tokenize_texts(str(checkpoint), TEXTS),
                     "text")
  logits = clip.zero_shot_logits(loaded, images, texts)
  assert logits.shape == (len(pictures()), len(TEXTS))
  got = {"image": images, "text": texts, "logits": logits}
  return {k: float(np.abs(np.asarray(got[k]) - reference[k]).max())
          for k in got}


def test_pretrained_clip_matches_transformers(checkpoint, reference):
  assert reference["image"].shape == (3, clip_checkpoint.PROJECTION_DIM)
  # Not trivially small: the scale exp(3.3) ~ 27 spreads the logits.
  assert np.abs(reference["logits"]).max() > 1.0
  differences = max_differences(checkpoint, reference)
  print("max abs differences:", differences)
  assert max(differences.values()) <= PARITY_ATOL, differences


def _untransposed_linear(source, name, bias=True):
  """A mapping bug: the torch `[out, in]` weight reshaped, not transposed."""
  w = source.take(f"{name}.weight")
  return {"kernel": w.reshape(w.shape[1], w.shape[0])}


def test_a_projection_read_without_transposing_breaks_parity(
    checkpoint, reference, monkeypatch):
  monkeypatch.setattr(clip, "linear", _untransposed_linear)
  differences = max_differences(checkpoint, reference)
  assert differences["image"] > PARITY_ATOL
  assert differences["text"] > PARITY_ATOL


def test_a_logit_scale_not_exponentiated_breaks_parity(
    checkpoint, reference, monkeypatch):
  monkeypatch.setattr(ContrastiveModel, "logit_scale",
                      lambda self: self.log_logit_scale)
  differences = max_differences(checkpoint, reference)
  assert differences["logits"] > PARITY_ATOL
  assert max(differences["image"], differences["text"]) <= PARITY_ATOL


def contrastive_config(checkpoint):
  """The experiment config's keys that the model and its initialisation
  read: `clip_model_config` as `config.model`."""
  return ml_collections.ConfigDict({
      "modalities": ("image", "text"), "objective": "contrastive",
      "model": clip.clip_model_config(str(checkpoint))})


@flax.struct.dataclass
class FreshState:
  """What the loop's initialisation reads of a fresh `TrainState`."""
  params: dict
  batch_stats: dict


def test_the_training_path_loads_the_same_and_can_fine_tune(checkpoint):
  """The loop's initialisation of a fresh run (`config.model.init_from` and
  the encoders' `init_from`) gives `load_clip`'s parameters; the
  contrastive loss has a finite, non-zero gradient for the projections and
  the logit scale."""
  c = contrastive_config(checkpoint)
  loaded = clip.load_clip(str(checkpoint))
  fresh = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(
      lambda: loaded.model.init(jax.random.key(0),
                                clip._example_inputs(c)))["params"])
  state = loop._initialize_encoders(c, FreshState(fresh, {}))
  jax.tree.map(np.testing.assert_array_equal,
               flax.core.unfreeze(jax.device_get(state.params)),
               jax.device_get(loaded.params))

  batch = {"image": clip.preprocess_images(str(checkpoint), pictures()[:2]),
           "text": clip.tokenize_texts(str(checkpoint), TEXTS[:2])}
  loss_fn = contrastive_loss(0.0, c.modalities)
  grads = jax.jit(jax.grad(lambda p: loss_fn(loaded.model.apply(
      {"params": p}, batch, train=False), batch)[0]))(state.params)
  for name in ("image_projection", "text_projection", "logit_scale"):
    norm = float(optax_norm(grads[name]))
    assert np.isfinite(norm) and norm > 0, name


def optax_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def test_wrong_configs_name_the_key(checkpoint, tmp_path):
  c = contrastive_config(checkpoint)
  params = jax.device_get(clip.load_clip(str(checkpoint)).params)
  c.model.embed_dim = 16
  with pytest.raises(ValueError, match=r"config.model.embed_dim=16, .*"
                     r"projection_dim=24"):
    clip.initialize_heads(c, params)
  c = contrastive_config(checkpoint)
  c.objective = "classification"
  with pytest.raises(ValueError, match=r"config.model.init_from=.*"
                     r"config.objective='contrastive', not 'classification'"):
    clip.initialize_heads(c, params)
  c = contrastive_config(checkpoint)
  c.model.encoders.text.init_from = str(tmp_path)
  with pytest.raises(ValueError, match=r"config.model.encoders.text.init_from"
                     r"=.*fit only its own towers"):
    clip.initialize_heads(c, params)
  # A CLIP whose logit_scale transformers would not cap.
  directory = tmp_path / "hot"
  torch.manual_seed(0)
  clip_checkpoint.build(directory, logit_scale=5.0)
  with pytest.raises(ValueError, match=r"logit_scale=5.0 is above log\(100\)"):
    clip.load_clip(str(directory))
  # Not a full CLIP: no projections or logit scale.
  (tmp_path / "bert").mkdir()
  (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
  with pytest.raises(ValueError, match=r"model_type 'bert'.*full CLIPModel"):
    clip.clip_model_config(str(tmp_path / "bert"))


def test_embed_a_trained_model_with_batch_statistics():
  """`LoadedModel` over another contrastive model (a BatchNorm ResNet and a
  bag of embeddings, as a trained emoji run would restore them): `embed`
  uses its batch statistics, in inference mode."""
  from configs import emoji_image_text  # pylint: disable=g-import-not-at-top
  c = emoji_image_text.get_config("image=resnet")
  c.model.encoders.image.stage_sizes = (1, 1)
  c.model.encoders.image.width = 8
  c.model.encoders.image.norm = "batch"
  c.model.embed_dim = 8
  model = build_contrastive_model(c)
  batch = {"image": np.random.default_rng(0).random((2, 16, 16, 3),
                                                    np.float32),
           "text": {"token_ids": np.ones((2, 4), np.int32),
                    "token_mask": np.ones((2, 4), bool)}}
  variables = jax.jit(model.init)(jax.random.key(0), batch)
  stats = jax.tree.map(lambda x: x * 0.5 + 0.01, variables["batch_stats"])
  loaded = clip.LoadedModel(model, variables["params"], c, stats)
  got = clip.embed(loaded, batch["image"], "image")
  embed = jax.jit(functools.partial(model.apply, method=ContrastiveModel.embed),
                  static_argnums=2)
  expected = embed({"params": variables["params"], "batch_stats": stats},
                   batch["image"], "image")
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
  assert not np.allclose(got, embed(variables, batch["image"], "image"))
  np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-6)
  with pytest.raises(KeyError, match="not 'audio'"):
    clip.embed(loaded, batch["image"], "audio")


def test_clip_config_with_and_without_a_base(checkpoint):
  c = clip.clip_config(str(checkpoint))
  assert c.objective == "contrastive" and c.modalities == ("image", "text")
  assert c.model.embed_dim == clip_checkpoint.PROJECTION_DIM
  assert c.pp_eval.text == (f"tokenize(tokenizer={str(checkpoint)!r}, "
                            f"max_length={clip_checkpoint.MAX_LENGTH})")
  from configs import emoji_image_text  # pylint: disable=g-import-not-at-top
  base = emoji_image_text.get_config()
  c = clip.clip_config(str(checkpoint), base)
  assert c.is_locked and base.model.encoders.image.name == "cnn"
  assert c.model.encoders.image.init_from == c.model.init_from == str(
      checkpoint)
  assert c.pp_train.text == "random_text|" + c.pp_eval.text.split("|")[1]
  assert c.pp_eval.text.startswith("select_text('en')|tokenize(tokenizer=")
  assert c.pp_eval.image == (f"hf_image_preprocess(checkpoint="
                             f"{str(checkpoint)!r})")
  with base.unlocked():
    base.pp_eval.text = "select_text('en')"
  with pytest.raises(ValueError, match=r"config.pp_eval.text=.*no tokenize"):
    clip.clip_config(str(checkpoint), base)

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import av_digits
from mmjax.models.multimodal import build_classifier


def tiny_config(modalities=("image", "audio"), fusion="early_fusion"):
  c = av_digits.get_config(f"fusion={fusion}")
  c.modalities = modalities
  c.model.encoders.image.features = (4,)
  c.model.encoders.audio.features = (4,)
  return c


BATCH = {"image": jnp.ones((2, 28, 28, 1)), "audio": jnp.zeros((2, 800)) + 0.01,
         "label": jnp.zeros((2,), jnp.int32)}


@pytest.mark.parametrize("modalities", [("image",), ("audio",), ("image", "audio")])
@pytest.mark.parametrize("fusion", ["early_fusion", "late_fusion"])
def test_logits_shape_and_params_per_modality(modalities, fusion):
  model = build_classifier(tiny_config(modalities, fusion))
  params = model.init(jax.random.key(0), BATCH, train=False)["params"]
  assert model.apply({"params": params}, BATCH).shape == (2, 10)
  encoders = {k for k in params if k.endswith("_encoder")}
  assert encoders == {f"{m}_encoder" for m in modalities}
  # Decision-level blocks predict themselves; others go through the head.
  assert ("head" in params) == (fusion != "late_fusion")


def test_missing_modality_through_the_model():
  model = build_classifier(tiny_config())
  variables = model.init(jax.random.key(0), BATCH, train=False)
  present = {"image": jnp.ones(2), "audio": jnp.array([1.0, 0.0])}
  ref = model.apply(variables, BATCH, present)
  other = dict(BATCH, audio=BATCH["audio"].at[1].set(0.5))
  out = model.apply(variables, other, present)
  np.testing.assert_allclose(out[1], ref[1], atol=1e-5)


def test_unknown_names_keys_and_missing_inputs():
  c = tiny_config()
  c.model.fusion.name = "tensor_fusion_v9"
  with pytest.raises(KeyError, match="Unknown fusion block 'tensor_fusion_v9'"):
    build_classifier(c)
  c = tiny_config()
  c.model.fusion.name = "cross_attention"  # early_fusion's keys remain
  with pytest.raises(ValueError, match=r"config.model.fusion: fusion block "
                     r"'cross_attention' has no attribute\(s\) \['hidden_dims'\]"):
    build_classifier(c)
  model = build_classifier(tiny_config())
  with pytest.raises(KeyError, match="batch has no 'audio' input"):
    model.init(jax.random.key(0), {"image": BATCH["image"]})


def test_values_outside_a_literal_attribute_name_the_key():
  """A value of an attribute annotated `Literal` outside its allowed set is
  refused when the model is built, naming the config key, the value and
  the allowed values; an allowed value builds."""
  c = tiny_config(fusion="late_fusion")
  c.model.fusion.combine = "avg"
  with pytest.raises(ValueError, match=re.escape(
      "config.model.fusion.combine: 'avg' is not one of 'average', "
      "'weighted', 'vote'")):
    build_classifier(c)
  c.model.fusion.combine = "vote"
  build_classifier(c)
  c = av_digits.get_config("fusion=early_fusion,image=resnet")
  c.model.encoders.image.norm = "layer"
  with pytest.raises(ValueError, match=re.escape(
      "config.model.encoders.image.norm: 'layer' is not one of 'group', "
      "'batch'")):
    build_classifier(c)
  c.model.encoders.image.norm = "batch"
  build_classifier(c)


@pytest.mark.parametrize("aux_loss_weight", [0.0, 1.0])
def test_aux_heads_and_modality_embeddings(aux_loss_weight):
  c = tiny_config()
  c.aux_loss_weight = aux_loss_weight
  model = build_classifier(c)
  params = model.init(jax.random.key(0), BATCH, train=False)["params"]
  assert ("audio_aux_head" in params) == (aux_loss_weight > 0)
  # A missing modality hides nothing from its own auxiliary head.
  present = {"image": jnp.ones(2), "audio": jnp.zeros(2)}
  _, out = model.apply({"params": params}, BATCH, present,
                       mutable=["modality_logits", "intermediates"])
  assert out["intermediates"]["audio_embedding"][0].shape == (
      2, c.model.encoders.audio.embed_dim)
  if aux_loss_weight:
    logits = out["modality_logits"]["audio"][0]
    assert logits.shape == (2, 10)
    np.testing.assert_allclose(
        logits, out["intermediates"]["audio_embedding"][0]
        @ params["audio_aux_head"]["kernel"] + params["audio_aux_head"]["bias"],
        rtol=1e-5, atol=1e-6)
  else:
    assert "modality_logits" not in out


@pytest.mark.parametrize("fusion", ["cross_attention", "bottleneck",
                                    "self_attention"])
def test_time_positions_reach_the_attention_blocks(fusion):
  """With positional_embedding="time", the audio tokens get the fixed code of
  their times (from the encoder's `token_times`, no parameter), the image
  tokens (no time axis) learned positions."""
  c = tiny_config(fusion=fusion)
  c.model.fusion.positional_embedding = "time"
  model = build_classifier(c)
  params = model.init(jax.random.key(0), BATCH, train=False)["params"]
  assert "position" in params["fusion"]["image_projection"]
  assert "position" not in params["fusion"]["audio_projection"]
  c.model.fusion.positional_embedding = "learned"
  params = build_classifier(c).init(jax.random.key(0), BATCH, train=False)["params"]
  assert "position" in params["fusion"]["audio_projection"]

"""mmjax.export.serving without a trained model: input names of a modality
given as a dict (text), presence inputs, casts and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from mmjax.export import serving

SPEC = {
    "image": tf.TensorSpec([1, 8, 8, 3], tf.float32),
    "text": {"token_ids": tf.TensorSpec([1, 16], tf.int32),
             "token_mask": tf.TensorSpec([1, 16], tf.bool)},
    "label": tf.TensorSpec([1], tf.int32),
    "mask": tf.TensorSpec([1], tf.float32),
}


def test_model_inputs_flatten_a_modality_dict():
  infos = serving.model_inputs(SPEC, ("text", "image"))
  assert [(i.name, i.shape, i.dtype, i.modality, i.key) for i in infos] == [
      ("text_token_ids", (16,), "int32", "text", "token_ids"),
      ("text_token_mask", (16,), "bool", "text", "token_mask"),
      ("image", (8, 8, 3), "float32", "image", None)]
  assert infos[0].as_json("batch")["shape"] == ["batch", 16]


def test_model_inputs_name_a_modality_the_pipeline_lacks():
  with pytest.raises(KeyError, match="produces no 'audio' input"):
    serving.model_inputs(SPEC, ("audio",))


def test_inference_fn_rebuilds_the_batch_and_casts_like_the_eval_step():
  seen = {}

  def apply_fn(variables, batch, present, train):
    seen.update(batch=batch, present=present, train=train,
                kernel=variables["params"]["w"].dtype,
                stats=variables["batch_stats"]["s"].dtype)
    return jnp.ones((batch["image"].shape[0], 3), jnp.bfloat16)

  infos = serving.model_inputs(SPEC, ("image", "text"))
  fn = serving.make_inference_fn(apply_fn, infos, ("image", "text"),
                                 dtype="bfloat16", with_presence=True)
  named = {"image": np.zeros((2, 8, 8, 3), np.float32),
           "text_token_ids": np.zeros((2, 16), np.int32),
           "text_token_mask": np.ones((2, 16), bool),
           "present_image": np.ones(2, np.float32),
           "present_text": np.zeros(2, np.float32)}
  variables = {"params": {"w": np.ones(3, np.float32)},
               "batch_stats": {"s": np.ones(3, np.float32)}}
  out = jax.jit(fn)(variables, named)
  assert out["logits"].dtype == jnp.float32 and out["logits"].shape == (2, 3)
  assert seen["batch"]["image"].dtype == jnp.bfloat16
  assert seen["batch"]["text"]["token_ids"].dtype == jnp.int32
  assert seen["batch"]["text"]["token_mask"].dtype == jnp.bool_
  assert set(seen["present"]) == {"image", "text"} and not seen["train"]
  assert seen["kernel"] == jnp.bfloat16 and seen["stats"] == jnp.float32


def test_unknown_dtype_is_refused():
  with pytest.raises(ValueError, match="config.dtype must be one of"):
    serving.make_inference_fn(None, [], (), dtype="float64")

"""The text families beyond the parity specs: a full `CLIPModel`, `BertFor*`
checkpoints (a "bert." prefix, task heads, with or without the pooler) and
the configs they refuse."""

import json

import jax
import numpy as np
import pytest

from mmjax.pretrained import load as pretrained_load
from mmjax.models.registries import ENCODERS, split_options
from mmjax.pretrained.weight_map import WeightError
from tests.pretrained import spec_bert, spec_clip_text

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

ATOL = 1e-4


def encode(directory, inputs, **overrides):
  """The `text_transformer` loaded from `directory`: (tokens, mask)."""
  config = pretrained_load.pretrained_encoder_config(
      str(directory), "text_transformer", **overrides).to_dict()
  kwargs, _ = split_options(config)
  name = kwargs.pop("name")
  encoder = ENCODERS.get(name)(**kwargs)
  abstract = jax.eval_shape(lambda: encoder.init(jax.random.key(0), inputs,
                                                 train=False))["params"]
  params = pretrained_load.load_hf_encoder(str(directory),
                                           {"name": name, **kwargs},
                                           abstract, "test")
  tokens, mask = encoder.apply({"params": params}, inputs, train=False)
  return np.asarray(tokens), np.asarray(mask)


def test_full_clip_model_checkpoint_loads_its_text_tower(tmp_path):
  """A `CLIPModel` (text_model. prefix, vision tower, projections,
  logit_scale) with the legacy eos_token_id 2: pooled at the largest id."""
  torch.manual_seed(0)
  text = {**spec_clip_text.TINY, "eos_token_id": 2}
  vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                intermediate_size=32, image_size=16, patch_size=8)
  model = transformers.CLIPModel(transformers.CLIPConfig(
      text_config=text, vision_config=vision, projection_dim=16))
  spec_bert.perturb(model, torch)
  model.save_pretrained(tmp_path)
  config = pretrained_load.pretrained_encoder_config(str(tmp_path),
                                                     "text_transformer")
  assert config.eos_token_id == -1 and config.causal and config.final_norm
  inputs = spec_clip_text.mmjax_inputs(eos_token_id=98)
  model = transformers.CLIPModel.from_pretrained(tmp_path).eval()
  reference = spec_clip_text.hf_outputs(model.text_model, inputs)
  tokens, _ = encode(tmp_path, inputs, pool="none")
  np.testing.assert_allclose(tokens, reference["last_hidden_state"], atol=ATOL)
  pooled, _ = encode(tmp_path, inputs, pool="eos")
  np.testing.assert_allclose(pooled[:, 0], reference["pooled"], atol=ATOL)


def _bert_reference(model, inputs):
  x = {k: torch.from_numpy(v.astype(np.int64)) for k, v in inputs.items()}
  with torch.no_grad():
    out = model(input_ids=x["token_ids"], attention_mask=x["token_mask"],
                token_type_ids=x["token_type_ids"])
  return out.last_hidden_state.numpy(), (
      None if out.pooler_output is None else out.pooler_output.numpy())


@pytest.mark.parametrize("head", ["BertForSequenceClassification",
                                  "BertForMaskedLM"])
def test_bert_task_checkpoints_load_their_tower(head, tmp_path):
  """"bert."-prefixed towers; the heads (`classifier.`, `cls.`) stay unused.
  `BertForMaskedLM` has no pooler: it loads without one, and an encoder
  that wants one names the missing weight."""
  torch.manual_seed(0)
  config = transformers.BertConfig(**spec_bert.TINY)
  model = getattr(transformers, head)(config)
  spec_bert.perturb(model, torch)
  model.save_pretrained(tmp_path)
  model = getattr(transformers, head).from_pretrained(tmp_path).eval()
  inputs = spec_bert.mmjax_inputs()
  hidden, pooled = _bert_reference(model.bert, inputs)
  tokens, _ = encode(tmp_path, inputs, pool="none")
  np.testing.assert_allclose(tokens, hidden, atol=ATOL)
  if pooled is not None:
    out, _ = encode(tmp_path, inputs, pool="cls", pooler="dense_tanh")
    np.testing.assert_allclose(out[:, 0], pooled, atol=ATOL)
  else:
    with pytest.raises(WeightError, match="pooler"):
      encode(tmp_path, inputs, pool="cls", pooler="dense_tanh")


def _config_dir(tmp_path, **changes):
  config = {"model_type": "bert", **spec_bert.TINY, "hidden_act": "gelu",
            **changes}
  (tmp_path / "config.json").write_text(json.dumps(config))
  return str(tmp_path)


@pytest.mark.parametrize("changes,match", [
    ({"hidden_act": "silu"}, r"hidden_act='silu'"),
    ({"position_embedding_type": "relative_key"},
     r"position_embedding_type='relative_key'"),
    ({"add_cross_attention": True, "is_decoder": True}, r"add_cross_attention"),
])
def test_bert_refuses_unsupported_configs(changes, match, tmp_path):
  with pytest.raises(ValueError, match=match):
    pretrained_load.pretrained_encoder_config(_config_dir(tmp_path, **changes),
                                              "text_transformer")


def test_bert_activations_and_defaults(tmp_path):
  config = pretrained_load.pretrained_encoder_config(
      _config_dir(tmp_path, hidden_act="gelu_new"), "text_transformer")
  assert config.activation == "gelu_tanh"
  assert not config.norm_first and config.embedding_norm
  assert not config.final_norm and not config.causal
  # Keys a config.json leaves out take BertConfig's defaults.
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
  config = pretrained_load.pretrained_encoder_config(str(tmp_path),
                                                     "text_transformer")
  assert (config.hidden_dim, config.num_layers, config.vocab_size,
          config.layer_norm_epsilon, config.activation) == (
              768, 12, 30522, 1e-12, "gelu")


def test_clip_text_refuses_several_eos_ids(tmp_path):
  config = {"model_type": "clip_text_model", **spec_clip_text.TINY,
            "eos_token_id": [5, 6]}
  (tmp_path / "config.json").write_text(json.dumps(config))
  with pytest.raises(ValueError, match="eos_token_id"):
    pretrained_load.pretrained_encoder_config(str(tmp_path), "text_transformer")

"""What a user sets beside a checkpoint's fixed attributes, tried on tiny
checkpoints whose configs differ from the parity specs': the statistics of
an AST fine-tuned on other data, an override that changes a fixed attribute
(the message names the key and what to do), and a ViT pooler mmjax does not
have (the message names the checkpoint's config key)."""

import functools
import warnings

import jax
import numpy as np
import pytest

from mmjax.models.registries import ENCODERS, split_options
from mmjax.pretrained import load as pretrained_load

torch = pytest.importorskip("torch")  # test-only dependency
transformers = pytest.importorskip("transformers")

# AST checkpoint: not spec_ast's (32 wide, 8x8 patches, 32 frames x 16 bins).
AST = dict(hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
           intermediate_size=40, patch_size=6, frequency_stride=3,
           time_stride=5, max_length=24, num_mel_bins=20,
           initializer_range=0.2)
# A fine-tuned checkpoint's preprocessor_config.json statistics.
AST_MEAN, AST_STD = -2.5, 3.0


def load(directory, config, inputs, where="config.model.encoders.x"):
  """(encoder, params) from an encoder config, as `init_from` loads it."""
  kwargs, _ = split_options(config.to_dict())
  name = kwargs.pop("name")
  encoder = ENCODERS.get(name)(**kwargs)
  abstract = jax.eval_shape(
      lambda: encoder.init(jax.random.key(0), inputs, train=False))["params"]
  return encoder, pretrained_load.load_hf_encoder(
      str(directory), {"name": name, **kwargs}, abstract, where)


def test_ast_with_its_own_statistics_from_waveforms(tmp_path):
  torch.manual_seed(1)
  transformers.ASTModel(transformers.ASTConfig(**AST)).eval().save_pretrained(
      tmp_path)
  waves = np.random.default_rng(0).standard_normal((2, 3000)).astype(
      np.float32) * 0.1
  config = pretrained_load.pretrained_encoder_config(
      str(tmp_path), "spectrogram_transformer", pool="cls",
      frontend={"mean": AST_MEAN, "std": AST_STD, "sample_rate": 16000})
  assert config.frontend.to_dict() == {
      "features": "ast_fbank", "max_length": 24, "num_mel_bins": 20,
      "mean": AST_MEAN, "std": AST_STD, "sample_rate": 16000}
  encoder, params = load(tmp_path, config, waves)
  tokens, _ = jax.jit(functools.partial(encoder.apply, train=False))(
      {"params": params}, waves)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # narrow mel banks
    extractor = transformers.ASTFeatureExtractor(
        num_mel_bins=20, max_length=24, mean=AST_MEAN, std=AST_STD)
  values = np.stack(extractor(list(waves), sampling_rate=16000)[
      "input_values"])
  model = transformers.ASTModel.from_pretrained(tmp_path).eval()
  with torch.no_grad():
    expected = model(input_values=torch.from_numpy(values)).pooler_output
  assert np.abs(np.asarray(tokens[:, 0]) - expected.numpy()).max() <= 1e-4
  # A key the checkpoint fixes is still refused, naming it.
  with pytest.raises(ValueError, match=r"override frontend.num_mel_bins=64, "
                     r"the checkpoint has 20"):
    pretrained_load.pretrained_encoder_config(
        str(tmp_path), "spectrogram_transformer", frontend={"num_mel_bins": 64})
  config.frontend.max_length = 30
  with pytest.raises(ValueError, match=r"config.model.encoders.x.frontend."
                     r"max_length=30, the checkpoint has 24 \(.*padded or cut"):
    load(tmp_path, config, waves)


@pytest.fixture(scope="module")
def bert_128(tmp_path_factory):
  """A BERT with 128 positions (spec_bert's has 16)."""
  directory = tmp_path_factory.mktemp("bert_128")
  torch.manual_seed(2)
  transformers.BertModel(transformers.BertConfig(
      vocab_size=50, hidden_size=24, num_hidden_layers=1,
      num_attention_heads=2, intermediate_size=40,
      max_position_embeddings=128)).eval().save_pretrained(directory)
  return directory


def test_an_override_of_a_fixed_attribute_names_it_and_what_to_do(bert_128):
  with pytest.raises(ValueError) as error:
    pretrained_load.pretrained_encoder_config(str(bert_128),
                                              "text_transformer", max_length=64)
  message = str(error.value)
  assert "override max_length=64, the checkpoint has 128" in message
  assert "tokenize op's max_length" in message
  assert "Build the encoder config" not in message

  config = pretrained_load.pretrained_encoder_config(str(bert_128),
                                                     "text_transformer")
  config.max_length = 64
  inputs = {"token_ids": np.ones((1, 8), np.int32),
            "token_mask": np.ones((1, 8), bool)}
  with pytest.raises(ValueError) as error:
    load(bert_128, config, inputs, "config.model.encoders.text")
  message = str(error.value)
  assert ("config.model.encoders.text.max_length=64, the checkpoint has 128"
          in message)
  assert "tokenize op's max_length" in message
  assert "Build the encoder config" not in message


def test_shorter_texts_need_no_override(bert_128):
  """The hint's claim: the 128-position encoder takes 64-token inputs."""
  config = pretrained_load.pretrained_encoder_config(str(bert_128),
                                                     "text_transformer")
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 50, (2, 64)).astype(np.int32)
  mask = np.arange(64)[None] < np.array([[64], [40]])
  inputs = {"token_ids": ids, "token_mask": mask}
  encoder, params = load(bert_128, config, inputs)
  tokens, _ = jax.jit(functools.partial(encoder.apply, train=False))(
      {"params": params}, inputs)
  model = transformers.BertModel.from_pretrained(bert_128).eval()
  with torch.no_grad():
    expected = model(input_ids=torch.from_numpy(ids.astype(np.int64)),
                     attention_mask=torch.from_numpy(mask.astype(np.int64)))
  hidden = expected.last_hidden_state.numpy()
  assert np.abs(np.where(mask[..., None], np.asarray(tokens) - hidden, 0)
                ).max() <= 1e-4


@pytest.mark.parametrize("pooler, key", [
    ({"pooler_act": "relu"}, r"pooler_act='relu'"),
    ({"pooler_output_size": 16}, r"pooler_output_size=16 \(not hidden_size=24\)"),
])
def test_a_vit_pooler_that_is_not_dense_tanh_names_its_key(tmp_path, pooler,
                                                           key):
  torch.manual_seed(3)
  transformers.ViTModel(transformers.ViTConfig(
      image_size=24, patch_size=6, num_channels=3, hidden_size=24,
      num_hidden_layers=1, num_attention_heads=2, intermediate_size=40,
      **pooler)).save_pretrained(tmp_path)
  with pytest.raises(ValueError, match=rf"override pooler='dense_tanh' .*{key}"
                     r".*not supported. Use pooler='none'"):
    pretrained_load.pretrained_encoder_config(str(tmp_path), "vit", pool="cls",
                                              pooler="dense_tanh")
  config = pretrained_load.pretrained_encoder_config(str(tmp_path), "vit",
                                                     pool="cls")
  images = np.zeros((1, 24, 24, 3), np.float32)
  load(tmp_path, config, images)  # pooler "none": the CLS output loads
  config.pooler = "dense_tanh"
  with pytest.raises(ValueError, match=rf"config.model.encoders.x.pooler="
                     rf"'dense_tanh' .*{key}"):
    load(tmp_path, config, images)

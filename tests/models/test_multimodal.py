import jax
import jax.numpy as jnp
import pytest

from configs import av_digits
from mmjax.models.multimodal import build_model


def tiny_config(modalities=("image", "audio"), fusion="early_fusion"):
  c = av_digits.get_config()
  c.modalities = modalities
  c.model.fusion.name = fusion
  c.model.encoders.image.features = (4,)
  c.model.encoders.audio.features = (4,)
  return c


BATCH = {"image": jnp.ones((2, 28, 28, 1)), "audio": jnp.zeros((2, 800)) + 0.01,
         "label": jnp.zeros((2,), jnp.int32)}


@pytest.mark.parametrize("modalities", [("image",), ("audio",), ("image", "audio")])
@pytest.mark.parametrize("fusion", ["early_fusion", "late_fusion"])
def test_logits_shape_and_params_per_modality(modalities, fusion):
  model = build_model(tiny_config(modalities, fusion))
  params = model.init(jax.random.key(0), BATCH, train=False)["params"]
  assert model.apply({"params": params}, BATCH).shape == (2, 10)
  encoders = {k for k in params if k.endswith("_encoder")}
  assert encoders == {f"{m}_encoder" for m in modalities}


def test_unknown_names_and_missing_inputs():
  c = tiny_config()
  c.model.fusion.name = "tensor_fusion_v9"
  with pytest.raises(KeyError, match="Unknown fusion block 'tensor_fusion_v9'"):
    build_model(c)
  model = build_model(tiny_config())
  with pytest.raises(KeyError, match="batch has no 'audio' input"):
    model.init(jax.random.key(0), {"image": BATCH["image"]})

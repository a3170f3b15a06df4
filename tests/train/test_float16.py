"""float16 training is refused (no loss scaling): a one-line ValueError
naming config.dtype, which launch.py prints as its `error: ...` line, raised
by the config check before any data is read or anything compiled."""

import optax
import pytest

from configs import av_digits
from mmjax import parallel
from mmjax.objectives.classification import classification_loss
from mmjax.train import loop, steps

MESSAGE = ("config.dtype='float16' is not supported for training: float16 "
           "needs loss scaling, which mmjax does not implement; use "
           "config.dtype='bfloat16' (float32's exponent range, no loss "
           "scaling)")


def test_training_refuses_float16_before_reading_data(tmp_path):
  """`loop.train_and_evaluate`, what `launch.py --mode=train` runs; the
  data is missing too: a data error would mean the check came later."""
  config = av_digits.get_config()
  config.dtype = "float16"
  config.data.manual_dir = str(tmp_path / "nowhere")
  config.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(ValueError) as e:
    loop.train_and_evaluate(config, tmp_path / "w")
  assert str(e.value) == MESSAGE
  assert not (tmp_path / "w").exists()


def test_train_step_refuses_float16():
  with pytest.raises(ValueError) as e:
    steps.make_train_step(parallel.make_mesh(), loss=classification_loss,
                          seed=0, label_smoothing=0.0,
                          schedule=optax.constant_schedule(0.1),
                          dtype="float16")
  assert str(e.value) == MESSAGE

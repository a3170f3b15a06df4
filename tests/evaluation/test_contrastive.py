"""mmjax.evaluation.contrastive: the contrastive objective's evaluator, its
zero-shot class texts and when zero-shot applies."""

import numpy as np
import pytest

from configs import av_digits
from mmjax import parallel
from mmjax.evaluation.contrastive import (ContrastiveEvaluator,
                                          zero_shot_modalities)
from mmjax.objectives.contrastive import CONTRASTIVE
from tests.train import contrastive_data


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("tokenizer")
  contrastive_data.build_tokenizer(directory)
  return directory


@pytest.fixture(scope="module")
def shapes_data_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tiny_shapes_tfds")
  contrastive_data.get_builder(data_dir)
  return data_dir


def test_zero_shot_class_texts_go_through_the_text_pp(
    shapes_data_dir, tokenizer_dir, tmp_path):
  config = contrastive_data.tiny_config(shapes_data_dir, tokenizer_dir)
  config.zero_shot.template = "{} on"
  builder = contrastive_data.get_builder(shapes_data_dir)
  mesh = parallel.make_mesh()
  evaluator = CONTRASTIVE.make_evaluator(builder, config, mesh)
  assert isinstance(evaluator, ContrastiveEvaluator)
  assert evaluator.zero_shot == ("image", "text")
  inputs = evaluator.class_inputs()
  tokenizer = contrastive_data.build_tokenizer(tmp_path / "again")
  expected = tokenizer([f"{c} on" for c in contrastive_data.COLOURS],
                       padding="max_length",
                       max_length=contrastive_data.MAX_LENGTH)
  np.testing.assert_array_equal(inputs["token_ids"], expected["input_ids"])
  np.testing.assert_array_equal(inputs["token_mask"],
                                np.asarray(expected["attention_mask"], bool))
  # A text pp that cannot take a string names its key and the way out.
  config.pp_eval.text = "value_range(0, 1)"
  with pytest.raises(ValueError, match=r"(?s)config.pp_eval.text='value_range"
                     r"\(0, 1\)' cannot preprocess the class texts.*Set "
                     r"config.zero_shot.pp"):
    CONTRASTIVE.make_evaluator(builder, config, mesh).class_inputs()
  config.zero_shot.pp = config.pp_train.text
  np.testing.assert_array_equal(
      CONTRASTIVE.make_evaluator(builder, config, mesh).class_inputs()[
          "token_ids"], expected["input_ids"])
  # No text encoder (av_digits' image + audio): no zero-shot.
  av = av_digits.get_config()
  assert zero_shot_modalities(av, builder) is None

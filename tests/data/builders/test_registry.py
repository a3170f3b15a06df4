"""mmjax.data.builders.registry: several processes prepare a dataset once."""

import jax
import ml_collections
import pytest
from jax.experimental import multihost_utils

from mmjax.data.builders import registry


@pytest.mark.parametrize("index", [0, 1])
def test_process_zero_prepares_before_the_others_open(monkeypatch, index):
  events = []
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: index)
  monkeypatch.setattr(multihost_utils, "sync_global_devices",
                      lambda name: events.append(f"barrier {name}"))
  monkeypatch.setattr(registry.DATASETS, "get", lambda name: (
      lambda config: events.append(f"open {config.name}") or "builder"))
  config = ml_collections.ConfigDict({"name": "av_digits"})
  assert registry.get_builder(config) == "builder"
  opened, barrier = "open av_digits", "barrier mmjax: av_digits prepared"
  assert events == ([opened, barrier] if index == 0 else [barrier, opened])

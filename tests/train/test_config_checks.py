"""mmjax.train.config_checks.changed_on_resume: what a resume may not change."""

from mmjax.train import config_checks


def config(**changes):
  c = {"seed": 0, "batch_size": 64, "optimizer": {"learning_rate": 2e-3},
       "input": {"shuffle_buffer_size": 0, "cycle_length": 16},
       "log_every_steps": 50}
  for key, value in changes.items():
    node, (*path, last) = c, key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return c


def test_guarded_keys_are_named_and_others_pass():
  assert config_checks.changed_on_resume(config(), config()) == []
  assert config_checks.changed_on_resume(
      config(), config(**{"log_every_steps": 10})) == []
  assert config_checks.changed_on_resume(config(), config(**{
      "optimizer.learning_rate": 1e-3, "seed": 1,
      "input.shuffle_buffer_size": 4096})) == [
          "input.shuffle_buffer_size", "optimizer.learning_rate", "seed"]


def test_a_run_saved_before_the_input_keys_resumes_with_their_old_value():
  old = config()
  del old["input"]
  assert config_checks.changed_on_resume(old, config()) == []
  assert config_checks.changed_on_resume(
      old, config(**{"input.shuffle_buffer_size": 4096})) == [
          "input.shuffle_buffer_size"]

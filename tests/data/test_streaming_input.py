"""Streaming training input (bounded shuffle buffer) and its checkpointed
position, on the fake AV digits builder (125 train pairs)."""

import itertools

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mmjax import checkpoint, parallel
from mmjax.data import input_checkpoint, pipeline
from mmjax.data.builders import av_digits, splits

MODALITIES = ("image", "audio")
PP = {"image": "value_range(0, 1)|random_translate(2)",
      "audio": "to_float|pad_or_crop(1000, mode='random')"}
BUFFER = 32


@pytest.fixture(scope="module")
def builder(shared_fake_manual_dir, tmp_path_factory):
  return av_digits.get_builder(shared_fake_manual_dir,
                               tmp_path_factory.mktemp("tfds"), splits.SplitSpec())


def streaming(builder, seed=0, start_step=0):
  return pipeline.train_batches(
      builder, "train", modalities=MODALITIES, pp=PP, global_batch_size=8,
      seed=seed, start_step=start_step, shuffle_buffer_size=BUFFER)


def image_ids(images):
  """The fake images encode their MNIST index in pixels [0, 0] and [0, 1]."""
  images = images.astype(int)
  return (images[:, 0, 0, 0] + 256 * images[:, 0, 1, 0]).tolist()


def assert_same(a, b):
  for k in (*MODALITIES, "label"):
    np.testing.assert_array_equal(a[k], b[k])


def test_streaming_order_is_seeded_and_a_bounded_shuffle(builder):
  first = list(itertools.islice(streaming(builder), 30))
  again = list(itertools.islice(streaming(builder), 30))
  other = next(streaming(builder, seed=1))
  for a, b in zip(first, again):
    assert_same(a, b)
  assert not np.array_equal(first[0]["audio"], other["audio"])

  # Output position i comes from the first i + BUFFER examples read: with
  # one file, those of file positions < i + BUFFER; an epoch's first
  # 125 - BUFFER outputs are therefore distinct examples.
  assert builder.info.splits["train"].num_shards == 1
  file_position = {int(ex["image_id"]): i for i, ex in enumerate(
      builder.as_dataset(split="train", shuffle_files=False))}
  raw = pipeline.train_batches(
      builder, "train", modalities=MODALITIES,
      pp={"image": "", "audio": "pad_or_crop(1000)"}, global_batch_size=8,
      seed=0, shuffle_buffer_size=BUFFER)
  ids = sum((image_ids(b["image"]) for b in itertools.islice(raw, 12)), [])
  read = [file_position[i] for i in ids[:125 - BUFFER]]
  assert all(r < i + BUFFER for i, r in enumerate(read))
  assert len(set(read)) == len(read) and read != sorted(read)


def test_streaming_checkpoint_restores_the_position_exactly(builder, tmp_path):
  """Save after 5 consumed steps with 2 batches in the device prefetch queue;
  a new pipeline restored from it yields the uninterrupted run's batches."""
  mesh = parallel.make_mesh()
  reference = list(itertools.islice(streaming(builder), 25))

  host = streaming(builder)
  device = parallel.DevicePrefetcher(host, mesh, size=2)
  for _ in range(5):
    next(device)
  manager = checkpoint.make_manager(tmp_path / "ckpt", keep=2)
  state = {"step": np.int32(5)}
  manager.save(5, args=ocp.args.Composite(
      default=ocp.args.StandardSave(state),
      input=input_checkpoint.InputSave(host.iterator, device.pending())))
  # The save is done with the iterator before it returns: moving on now
  # must not change what was saved.
  for _ in range(3):
    next(device)
  manager.wait_until_finished()
  assert len(device.pending()) == 2

  resumed = streaming(builder)
  pending = checkpoint.restore_input_position(manager, 5, resumed.iterator)
  assert len(pending) == 2
  stream = itertools.chain(pending, resumed)
  for expected in reference[5:25]:
    assert_same(next(stream), expected)


def test_restore_into_a_pipeline_built_with_a_skip(builder, tmp_path):
  """A run resumed by skipping (no saved position) saves a position that a
  later pipeline built without the skip restores."""
  reference = list(itertools.islice(streaming(builder), 12))
  skipped = streaming(builder, start_step=4)
  for expected in reference[4:6]:
    assert_same(next(skipped), expected)
  manager = checkpoint.make_manager(tmp_path / "ckpt", keep=2)
  manager.save(6, args=ocp.args.Composite(
      default=ocp.args.StandardSave({"step": np.int32(6)}),
      input=input_checkpoint.InputSave(skipped.iterator, [])))
  manager.wait_until_finished()
  resumed = streaming(builder)
  assert checkpoint.restore_input_position(manager, 6, resumed.iterator) == []
  for expected in reference[6:12]:
    assert_same(next(resumed), expected)


def test_no_position_for_this_process(builder, tmp_path, monkeypatch):
  manager = checkpoint.make_manager(tmp_path / "ckpt", keep=2)
  host = streaming(builder)
  manager.save(1, args=ocp.args.Composite(
      default=ocp.args.StandardSave({"step": np.int32(1)}),
      input=input_checkpoint.InputSave(host.iterator, [])))
  manager.wait_until_finished()
  assert checkpoint.has_input_position(manager, 1)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  assert checkpoint.restore_input_position(manager, 1, host.iterator) is None


def test_negative_buffer_is_refused(builder):
  with pytest.raises(ValueError, match="shuffle_buffer_size must be >= 0"):
    pipeline.train_batches(builder, "train", modalities=MODALITIES, pp=PP,
                           global_batch_size=8, seed=0, shuffle_buffer_size=-1)

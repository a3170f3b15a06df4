"""The tf.data pipeline on the fake AV digits builder (125/25/50 pairs)."""

import itertools

import jax
import numpy as np
import pytest

from mmjax.data import pipeline
from mmjax.data.builders import av_digits, splits

MODALITIES = ("image", "audio")
PP = {"image": "value_range(0, 1)|random_translate(2)",
      "audio": "to_float|pad_or_crop(1000, mode='random')"}
RAW = {"image": "", "audio": "pad_or_crop(1000)"}


@pytest.fixture(scope="module")
def builder(shared_fake_manual_dir, tmp_path_factory):
  return av_digits.get_builder(shared_fake_manual_dir,
                               tmp_path_factory.mktemp("tfds"), splits.SplitSpec())


def take(iterator, n):
  return list(itertools.islice(iterator, n))


def image_ids(images):
  """The fake images encode their MNIST index in pixels [0, 0] and [0, 1]."""
  images = images.astype(int)
  return (images[:, 0, 0, 0] + 256 * images[:, 0, 1, 0]).tolist()


def test_train_batches_shapes_and_dtypes(builder):
  (batch,) = take(pipeline.train_batches(
      builder, "train", modalities=MODALITIES, pp=PP, global_batch_size=8,
      seed=0), 1)
  assert batch["image"].shape == (8, 28, 28, 1)
  assert batch["image"].dtype == np.float32
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  assert batch["audio"].shape == (8, 1000) and batch["audio"].dtype == np.float32
  assert batch["label"].dtype == np.int32 and set(batch) == {*MODALITIES, "label"}


def test_train_order_is_seeded_and_resumable(builder):
  def batches(seed, start_step=0):
    return take(pipeline.train_batches(
        builder, "train", modalities=MODALITIES, pp=PP, global_batch_size=8,
        seed=seed, start_step=start_step), 40 - start_step)

  first, again, other = batches(0), batches(0), batches(1)
  resumed = batches(0, start_step=25)  # 25 * 8 = 200 > 125: past an epoch
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["audio"], b["audio"])
  assert not np.array_equal(first[0]["audio"], other[0]["audio"])
  for a, b in zip(first[25:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["audio"], b["audio"])
  # Every epoch visits each example once, in a new order.
  epoch_ids = [image_ids(b["image"]) for b in batches_raw(builder, 30)]
  flat = sum(epoch_ids, [])
  assert sorted(flat[:120]) == sorted(set(flat[:120]))
  assert flat[:120] != flat[125:245]


def batches_raw(builder, n):
  return take(pipeline.train_batches(
      builder, "train", modalities=MODALITIES, pp=RAW, global_batch_size=4,
      seed=0), n)


def test_eval_batches_cover_split_once_with_padding(builder):
  ds, num_batches = pipeline.eval_batches(
      builder, "test", modalities=MODALITIES, pp=RAW, global_batch_size=16)
  batches = list(ds.as_numpy_iterator())
  assert num_batches == len(batches) == 4  # 50 examples -> 4 x 16, 14 padding
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.sum() == 50 and mask[:50].all()
  ids = sum((image_ids(b["image"]) for b in batches), [])[:50]
  expected = [int(ex["image_id"]) for ex in builder.as_dataset(split="test")]
  assert sorted(ids) == sorted(expected)


def test_processes_read_disjoint_shards(builder, monkeypatch):
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  per_process, counts = [], []
  for index in range(2):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    ds, n = pipeline.eval_batches(builder, "test", modalities=MODALITIES,
                                  pp=RAW, global_batch_size=16)
    batches = list(ds.as_numpy_iterator())
    counts.append(len(batches))
    assert batches[0]["image"].shape[0] == 8  # local batch = global / 2
    ids = sum((image_ids(b["image"]) for b in batches), [])
    mask = np.concatenate([b["mask"] for b in batches]).astype(bool)
    per_process.append({i for i, m in zip(ids, mask) if m})
    train = take(pipeline.train_batches(
        builder, "train", modalities=MODALITIES, pp=RAW, global_batch_size=8,
        seed=0), 5)
    per_process.append(set(sum((image_ids(b["image"]) for b in train), [])))
  test0, train0, test1, train1 = per_process
  assert counts[0] == counts[1]  # multi-host steps must match
  assert not test0 & test1 and len(test0 | test1) == 50
  assert not train0 & train1


def as_processes(monkeypatch, count, fn):
  """`[fn() as process i of count for i in range(count)]`."""
  monkeypatch.setattr(jax, "process_count", lambda: count)
  out = []
  for index in range(count):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    out.append(fn())
  return out


def test_global_batches_do_not_depend_on_the_process_count(builder, monkeypatch):
  """Process p's local batch is the p-th block of the 1-process global batch
  (same examples, order and augmentation), also when resuming."""
  def batches(start_step=0, n=20):
    return take(pipeline.train_batches(
        builder, "train", modalities=MODALITIES, pp=PP, global_batch_size=8,
        seed=0, start_step=start_step), n)

  single = batches()  # 20 * 8 = 160 > 125 examples: into the second epoch
  two = as_processes(monkeypatch, 2, batches)
  resumed = as_processes(monkeypatch, 2, lambda: batches(start_step=13, n=7))
  for step, expected in enumerate(single):
    for m in (*MODALITIES, "label"):
      np.testing.assert_array_equal(
          np.concatenate([two[0][step][m], two[1][step][m]]), expected[m])
      if step >= 13:
        np.testing.assert_array_equal(
            np.concatenate([resumed[0][step - 13][m],
                            resumed[1][step - 13][m]]), expected[m])
  with pytest.raises(ValueError, match="divisible by the number of processes"):
    as_processes(monkeypatch, 3, batches)


def test_eval_preprocessing_does_not_depend_on_the_process_count(
    builder, monkeypatch):
  """A random eval op draws from the example's position in the split, the
  same for any number of processes (25 examples: shares of 13 + 12, and
  9 + 8 + 8)."""
  pp = {"image": "", "audio": "to_float|pad_or_crop(400, mode='random')"}

  def audio_by_id():
    ds, _ = pipeline.eval_batches(builder, "validation", modalities=MODALITIES,
                                  pp=pp, global_batch_size=12)
    out = {}
    for b in ds.as_numpy_iterator():
      for i, audio, mask in zip(image_ids(b["image"]), b["audio"], b["mask"]):
        if mask:
          out[i] = audio
    return out

  single = audio_by_id()
  assert len(single) == builder.info.splits["validation"].num_examples
  for count in (2, 3):
    merged = {}
    for part in as_processes(monkeypatch, count, audio_by_id):
      assert not set(part) & set(merged)
      merged.update(part)
    assert sorted(merged) == sorted(single)
    for i, audio in single.items():
      np.testing.assert_array_equal(merged[i], audio)

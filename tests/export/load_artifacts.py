"""Run as a script in a fresh process: loads one kind of export artifact
the way a serving caller would, without mmjax, and writes what it computes.

  python load_artifacts.py {jax_export,saved_model} EXPORT_DIR INPUTS.npz \
      OUT.npz [EXPORT_DIR INPUTS.npz OUT.npz ...]

`jax_export` imports only jax and numpy, `saved_model` tensorflow and numpy
(TensorFlow 2.21 imports jax itself when it is installed); any `import
mmjax` fails.
INPUTS.npz holds one array per input name of the `with_presence` entry
point (16 examples); `serving_default` is called on batches of 5 (5, 5, 5,
1) and `with_presence` on the 16 at once. OUT.npz gets `<entry>/<output>`.
"""

import json
import sys

sys.modules["mmjax"] = None  # a loader that needs mmjax fails here

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

BATCH_SIZES = {"serving_default": 5, "with_presence": 16}


def main(kind, *triples):
  for i in range(0, len(triples), 3):
    reload(kind, *triples[i:i + 3])
  if kind == "jax_export":
    assert "tensorflow" not in sys.modules, "jax_export loading imported TF"


def reload(kind, export_dir, inputs_path, out_path):
  with open(f"{export_dir}/signature.json") as f:
    signature = json.load(f)
  data = dict(np.load(inputs_path))
  if kind == "jax_export":
    import jax  # pylint: disable=g-import-not-at-top
    def load(entry):
      with open(f"{export_dir}/{entry['jax_export']}", "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
      return lambda named: {k: np.asarray(v)
                            for k, v in exported.call(named).items()}
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    model = tf.saved_model.load(f"{export_dir}/saved_model")
    def load(entry):
      fn = model.signatures[entry["saved_model_signature"]]
      return lambda named: {k: v.numpy() for k, v in fn(
          **{n: tf.constant(x) for n, x in named.items()}).items()}
  out = {}
  for name, entry in signature["entry_points"].items():
    call = load(entry)
    names = [i["name"] for i in entry["inputs"]]
    size = BATCH_SIZES[name]
    parts = [call({n: data[n][i:i + size] for n in names})
             for i in range(0, len(data[names[0]]), size)]
    for key in parts[0]:
      out[f"{name}/{key}"] = np.concatenate([p[key] for p in parts])
  np.savez(out_path, **out)


if __name__ == "__main__":
  main(*sys.argv[1:])

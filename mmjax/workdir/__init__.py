"""A run's workdir: everything a trained model needs, in one folder.

`python launch.py --config C --workdir W` writes into W:

  config.json          the resolved experiment config (config.N.json: the
                       config of a resume that changed it)
  assets/              the preprocessing state fitted on the training data
                       (e.g. the dataset's byte-level BPE `tokenizer/`), copied
                       from the prepared dataset when training starts, with
                       assets.json (each file tree's sha256 fingerprint and
                       source); every later mode reads these, never the
                       dataset's own (`mmjax.workdir.assets`)
  checkpoints/<step>/  Orbax checkpoints of the train_state (their custom
                       metadata records the assets' fingerprints)
  launches.jsonl, metrics.jsonl, tensorboard/, run_info.json
  results.json, confusion_<split>.{png,json}
  evaluations/, robustness/   later `--mode=evaluate` / `robustness` outputs

A workdir is self-contained: `python launch.py --workdir W --mode=evaluate`
reads the config back from W (`mmjax.workdir.configs`), and W can be moved or
copied to another machine; only the raw data is read from elsewhere
(`--config.data.manual_dir` / `data_dir`, or the defaults).
"""

"""mmjax.data.builders.base: where the manual and data directories default
to."""

from pathlib import Path

from mmjax.data.builders import base


def test_resolve_dirs(monkeypatch, tmp_path):
  monkeypatch.delenv(base.MANUAL_DIR_ENV, raising=False)
  monkeypatch.delenv(base.DATA_DIR_ENV, raising=False)
  repo = Path(__file__).resolve().parents[3]  # tests/data/builders/ -> repo
  assert base.resolve_manual_dir(None) == repo.parent / "shared" / "data"
  assert base.resolve_manual_dir("") == repo.parent / "shared" / "data"
  assert base.resolve_data_dir(None) == (
      Path("~/tensorflow_datasets").expanduser())
  monkeypatch.setenv(base.MANUAL_DIR_ENV, str(tmp_path / "env_manual"))
  monkeypatch.setenv(base.DATA_DIR_ENV, str(tmp_path / "env_data"))
  assert base.resolve_manual_dir(None) == tmp_path / "env_manual"
  assert base.resolve_data_dir("") == tmp_path / "env_data"
  assert base.resolve_manual_dir("/m") == Path("/m")
  assert base.resolve_data_dir("/d") == Path("/d")

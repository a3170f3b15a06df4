"""mmjax.data.pp.text: the CLDR locale chain of the text ops (the ops
themselves are tested on the emoji data, tests/data/builders/test_emoji.py)."""

from mmjax.data.pp import text


def test_locale_chain():
  assert text.locale_chain("en_GB") == ["en_GB", "en_001", "en"]
  assert text.locale_chain("es_MX") == ["es_MX", "es_419", "es"]
  assert text.locale_chain("zh_Hant_HK") == ["zh_Hant_HK", "zh_Hant"]
  assert text.locale_chain("sr_Cyrl_BA") == ["sr_Cyrl_BA", "sr_Cyrl", "sr"]
  assert text.locale_chain("fr") == ["fr"]

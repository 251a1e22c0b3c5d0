"""The search service without HTTP: its model must be the index's; removal may be missing."""

import shutil

import pytest

from bgbias.errors import ConfigError
from bgbias.search.index import SearchIndex
from bgbias.search.service import SearchService, ServeOptions, Unavailable
from tests.helpers import write_checkpoint


def test_without_the_mask_model_removal_answers_503_and_search_works(
    built_index, catalogue, tmp_path, monkeypatch
):
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "none"))
    service = SearchService.open([built_index], ServeOptions(mask_model="u2netp", device="cpu"))
    removal = service.health()["remove_background"]
    assert removal["available"] is False
    assert "bgbias mask-weights fetch u2netp" in removal["problem"]
    photo = (catalogue / "images" / "c0" / "001.png").read_bytes()
    with pytest.raises(Unavailable, match="bgbias mask-weights fetch u2netp") as caught:
        service.search_photo(photo, remove_background=True)
    assert caught.value.status == 503
    assert service.search_photo(photo, k=1)["results"][0]["id"] == "c0/001.png"


def test_an_index_refuses_a_model_that_changed_since_it_was_built(catalogue, checkpoint, tmp_path):
    from bgbias.search.build import build_index

    model = shutil.copy(checkpoint, tmp_path / "model.ckpt")
    build_index(str(model), catalogue, tmp_path / "idx", device="cpu", progress=False)
    write_checkpoint(tmp_path / "model.ckpt", seed=5)  # retrained in place
    with pytest.raises(ConfigError, match="rebuild the index"):
        SearchIndex.load(tmp_path / "idx").load_embedder()

import numpy as np
from PIL import Image

from bgbias.masks.generate import generate_masks
from bgbias.masks.predictors import GrabCutPredictor


def test_grabcut_finds_a_contrasting_object_without_weights(tmp_path):
    image = np.full((60, 80, 3), 30, dtype=np.uint8)
    image[15:45, 25:55] = (230, 200, 20)  # a yellow box on a dark background
    (tmp_path / "images").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "box.png")
    report = generate_masks(
        tmp_path / "images", tmp_path / "masks", predictor=GrabCutPredictor(), progress=False
    )
    assert report.written == 1
    mask = np.asarray(Image.open(tmp_path / "masks" / "box.png")) >= 128
    truth = np.zeros((60, 80), bool)
    truth[15:45, 25:55] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9

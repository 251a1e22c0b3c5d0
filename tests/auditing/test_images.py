"""Images from any folder layout, masks found by name or made on demand, clear errors."""

import numpy as np
import pytest
from PIL import Image

from bgbias.auditing.images import decode, find_images, make_missing_masks
from bgbias.errors import DataError, MissingMasksError
from tests.helpers import write_folder_dataset


def write_image(path, seed=0, size=(40, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def write_mask(path, size=(40, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[8:24, 10:30] = 255
    Image.fromarray(mask).save(path)


def test_bgbias_layout_with_a_split(tmp_path):
    root = write_folder_dataset(
        tmp_path / "ds", {"a": 2, "b": 3, "c": 2}, splits={"train": ["a"], "test": ["b", "c"]}
    )
    images = find_images(root, split="test")
    assert images.layout == "bgbias" and images.classes == ["b", "c"]
    assert len(images) == 5 and all(i.mask is not None for i in images.items)
    assert images.labels.tolist() == [0, 0, 0, 1, 1]


def test_class_tree_and_flat_folder(tmp_path):
    for i, name in enumerate(["cats/1.jpg", "cats/2.jpg", "dogs/x/3.png"]):
        write_image(tmp_path / "tree" / name, i)
    tree = find_images(tmp_path / "tree")
    assert tree.layout == "class folders" and tree.classes == ["cats", "dogs"]
    assert [i.class_name for i in tree.items] == ["cats", "cats", "dogs"]
    for i in range(3):
        write_image(tmp_path / "flat" / f"{i}.png", i)
    flat = find_images(tmp_path / "flat")
    assert flat.layout == "flat" and flat.classes is None and flat.labels is None
    assert all(i.mask is None for i in flat.items)


def test_images_and_masks_side_by_side_by_name_pattern(tmp_path):
    folder = tmp_path / "cub"
    for n in ("001", "002"):
        write_image(folder / f"{n}_image.jpeg")
        write_mask(folder / f"{n}_mask.png")
        write_mask(folder / f"{n}_mask_pred.png")
    images = find_images(folder, masks=folder, image_suffix="_image", mask_suffix="_mask")
    assert [i.id for i in images.items] == ["001_image.jpeg", "002_image.jpeg"]
    assert [i.mask.name for i in images.items] == ["001_mask.png", "002_mask.png"]
    pixels = decode(images, [(32, 32)])[(32, 32)]
    assert pixels.images.shape == (2, 3, 32, 32) and pixels.masks.shape == (2, 1, 32, 32)
    assert 0.3 < float(pixels.mask_area[0]) < 0.6


def test_missing_masks_without_a_mask_model_is_one_line(tmp_path):
    for i in range(3):
        write_image(tmp_path / "flat" / f"{i}.png", i)
    images = find_images(tmp_path / "flat")
    with pytest.raises(MissingMasksError, match="3 of 3 images have no mask") as info:
        make_missing_masks(images, None, tmp_path / "cache")
    assert "--mask-model" in str(info.value) and "\n" not in str(info.value)


def test_masks_made_on_demand_are_cached_and_reused(tmp_path):
    pytest.importorskip("cv2")
    for i in range(2):
        write_image(tmp_path / "flat" / f"{i}.png", i, size=(48, 48))
    images = find_images(tmp_path / "flat")
    made = make_missing_masks(images, "grabcut", tmp_path / "cache")
    assert all(i.mask is not None and i.mask.is_file() for i in made.items)
    stamps = [i.mask.stat().st_mtime_ns for i in made.items]
    again = make_missing_masks(find_images(tmp_path / "flat"), None, tmp_path / "cache")
    assert [i.mask.stat().st_mtime_ns for i in again.items] == stamps  # reused, not remade


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(DataError, match="image folder not found"):
        find_images(tmp_path / "nothing")
    write_image(tmp_path / "some" / "a.png")
    with pytest.raises(DataError, match="whose name ends with '_image'"):
        find_images(tmp_path / "some", image_suffix="_image")
    # a mask folder that is not there is named, not silently replaced by the dataset's own
    root = write_folder_dataset(tmp_path / "ds", {"a": 2})
    with pytest.raises(DataError, match=r"nomasks: mask folder not found"):
        find_images(root, masks=tmp_path / "nomasks")


def test_a_mask_of_the_wrong_size_is_a_one_line_error_naming_it(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 2, "b": 2}, size=(40, 32))
    Image.new("L", (20, 20)).save(root / "masks" / "b" / "001.png")
    with pytest.raises(DataError) as info:
        decode(find_images(root), [(32, 32)])
    message = str(info.value)
    assert "\n" not in message
    assert "masks/b/001.png: mask is 20x20 but its image is 40x32" in message


def test_a_phone_photo_is_decoded_upright_so_its_mask_fits(tmp_path):
    """EXIF orientation is applied (bgbias.decoding): the mask, drawn on the upright photo,
    matches it, and the object lands where the mask says."""
    from tests.helpers import write_oriented_jpeg

    displayed = np.zeros((48, 32, 3), np.uint8)  # upright: 32 wide, 48 tall
    displayed[:16] = 255  # a white object at the top
    (tmp_path / "photos").mkdir()
    write_oriented_jpeg(tmp_path / "photos" / "p.jpg", displayed, orientation=6)
    mask = np.zeros((48, 32), np.uint8)
    mask[:16] = 255
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "p.png")
    pixels = decode(find_images(tmp_path / "photos", masks=tmp_path / "masks"), [(32, 32)])
    images, masks = pixels[(32, 32)].images[0].float(), pixels[(32, 32)].masks[0, 0]
    top, bottom = images[:, masks > 127].mean(), images[:, masks == 0].mean()
    assert top > 200 and bottom < 60  # object pixels under the mask, not rotated away

"""The extraction transform keeps the whole image; crops and rotations land where they should."""

from __future__ import annotations

import pytest
import torch

from ncl.data.transforms import crop_box, extraction_transform, rotate90, training_transform

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def marked_image(height: int, width: int, marker: int = 40) -> torch.Tensor:
    """Grey uint8 image with a red, green, blue and white square in its TL, TR, BL, BR corners."""
    image = torch.full((3, height, width), 128, dtype=torch.uint8)
    corners = {
        RED: (slice(0, marker), slice(0, marker)),
        GREEN: (slice(0, marker), slice(width - marker, width)),
        BLUE: (slice(height - marker, height), slice(0, marker)),
        WHITE: (slice(height - marker, height), slice(width - marker, width)),
    }
    for colour, (rows, cols) in corners.items():
        image[:, rows, cols] = torch.tensor(colour, dtype=torch.uint8)[:, None, None]
    return image


def colour_at(image: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    return image[:, rows, cols].float().mean(dim=(1, 2))


def assert_colour(image: torch.Tensor, rows: slice, cols: slice, colour: tuple, scale: float):
    expected = torch.tensor(colour, dtype=torch.float32) / scale
    torch.testing.assert_close(colour_at(image, rows, cols), expected, atol=0.02, rtol=0)


def test_extraction_transform_resizes_without_cropping() -> None:
    image = marked_image(300, 500)
    out = extraction_transform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(image)
    assert out.shape == (3, 224, 224)
    assert out.dtype == torch.float32
    near, far = slice(2, 10), slice(214, 222)
    assert_colour(out, near, near, RED, 255)
    assert_colour(out, near, far, GREEN, 255)
    assert_colour(out, far, near, BLUE, 255)
    assert_colour(out, far, far, WHITE, 255)
    # the markers are squashed by the aspect ratio, not cut: 40/300 of the height, 40/500 of the width
    red_rows = (out[0, :, 5] > 0.9) & (out[1, :, 5] < 0.1)
    red_cols = (out[0, 5, :] > 0.9) & (out[1, 5, :] < 0.1)
    assert abs(int(red_rows.sum()) - 40 * 224 / 300) <= 2
    assert abs(int(red_cols.sum()) - 40 * 224 / 500) <= 2


def test_extraction_transform_normalises() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    image = torch.full((3, 37, 91), 200, dtype=torch.uint8)
    out = extraction_transform(mean, std, size=64)(image)
    assert out.shape == (3, 64, 64)
    expected = (200 / 255 - torch.tensor(mean)) / torch.tensor(std)
    torch.testing.assert_close(out[:, 10, 10], expected)


def test_crop_box_rounds_outwards_and_clips() -> None:
    image = torch.arange(50 * 60, dtype=torch.int32).reshape(1, 50, 60)
    torch.testing.assert_close(crop_box(image, (10.2, 20.7, 30.5, 40.0)), image[:, 20:40, 10:31])
    torch.testing.assert_close(crop_box(image, (-5.0, -3.0, 100.0, 200.0)), image)
    assert crop_box(image, (7.0, 8.0, 7.0, 8.0)).shape == (1, 1, 1)
    assert crop_box(image, (70.0, 60.0, 80.0, 90.0)).shape == (1, 1, 1)
    with pytest.raises(ValueError, match="x1 <= x2"):
        crop_box(image, (30.0, 0.0, 10.0, 5.0))


def test_crop_then_extract_fills_the_output_with_the_box() -> None:
    image = marked_image(300, 500)
    box = crop_box(image, (460.4, 260.2, 499.6, 299.9))  # inside the white marker
    out = extraction_transform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(box)
    assert out.shape == (3, 224, 224)
    assert out.min() > 0.99


def test_rotate90_is_counter_clockwise() -> None:
    image = torch.tensor([[0, 1, 2], [3, 4, 5]])[None]
    assert rotate90(image, 90)[0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert rotate90(image, 180)[0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate90(image, 270)[0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert torch.equal(rotate90(image, -90), rotate90(image, 270))
    assert torch.equal(rotate90(image, 360), image)
    with pytest.raises(ValueError, match="multiples of 90"):
        rotate90(image, 45)


def test_rotate90_moves_corners() -> None:
    rotated = rotate90(marked_image(300, 500), 90)
    assert rotated.shape == (3, 500, 300)
    near, far = slice(5, 30), slice(-30, -5)
    assert_colour(rotated, far, near, RED, 1)  # top-left -> bottom-left
    assert_colour(rotated, near, near, GREEN, 1)  # top-right -> top-left
    assert_colour(rotated, far, far, BLUE, 1)  # bottom-left -> bottom-right
    assert_colour(rotated, near, far, WHITE, 1)  # bottom-right -> top-right


def test_training_transform_random_crops() -> None:
    transform = training_transform((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    image = torch.randint(
        0, 256, (3, 180, 260), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    torch.manual_seed(0)
    first, second = transform(image), transform(image)
    assert first.shape == second.shape == (3, 224, 224)
    assert first.dtype == torch.float32
    assert float(first.min()) >= -1.0 and float(first.max()) <= 1.0
    assert not torch.equal(first, second)

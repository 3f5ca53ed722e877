"""Restoring arrays: dtypes, greyscale, layouts, and the self-ensemble's equivariance."""

import numpy as np
import pytest

import keras_din
from keras_din.restore import restore_array

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def model():
    model = keras_din.DIN(version="enhanced", scale=2, num_features=4, growth_rate=2, num_branches=2, num_blocks=1)
    for weight in model.weights:  # non-trivial weights, so that orientation matters
        weight.assign(RNG.normal(0, 0.3, weight.shape).astype("float32"))
    return model


def test_dtypes_are_kept(model):
    image = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert restore_array(model, image).dtype == np.uint8
    deep = restore_array(model, image.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == (10, 14, 3)
    floats = restore_array(model, image.astype(np.float32) / 255)
    assert floats.dtype == np.float32 and 0 <= floats.min() and floats.max() <= 1
    np.testing.assert_allclose(floats * 255, restore_array(model, image).astype(float), atol=0.51)


def test_greyscale_through_a_colour_model(model):
    grey = RNG.integers(0, 256, (6, 4), dtype=np.uint8)
    assert restore_array(model, grey).shape == (12, 8)
    with pytest.raises(ValueError, match="2 channels but the model expects 3"):
        restore_array(model, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="int32"):
        restore_array(model, np.zeros((4, 4, 3), np.int32))


def test_channels_first_model_gives_the_same_image(model, tmp_path):
    first = keras_din.DIN.from_preset(model.save_to_preset(tmp_path / "p"), data_format="channels_first")
    image = RNG.random((6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(restore_array(first, image), restore_array(model, image), atol=1e-5)


def test_self_ensemble_is_equivariant_and_differs_from_one_pass(model):
    image = RNG.random((6, 5, 3)).astype(np.float32)
    ensemble = restore_array(model, image, self_ensemble=True)
    flipped = restore_array(model, np.ascontiguousarray(image[:, ::-1]), self_ensemble=True)[:, ::-1]
    rotated = np.rot90(restore_array(model, np.ascontiguousarray(np.rot90(image)), self_ensemble=True), -1)
    np.testing.assert_allclose(flipped, ensemble, atol=1e-5)
    np.testing.assert_allclose(rotated, ensemble, atol=1e-5)
    assert np.abs(ensemble - restore_array(model, image)).max() > 1e-3


def test_a_diverged_model_is_refused_not_written_as_black_pixels():
    diverged = keras_din.DIN(scale=2, num_features=4, growth_rate=2, num_branches=1, num_blocks=1)
    bias = diverged.weights[-1]
    bias.assign(np.full(bias.shape, np.nan, "float32"))
    with pytest.raises(FloatingPointError, match="NaN or Inf values.*float32 or mixed_bfloat16"):
        restore_array(diverged, RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8))


# --- files: TIFF of every kind, metadata, bit depth, options, race-free no-overwrite -----------------

import threading  # noqa: E402
import warnings  # noqa: E402

import tifffile  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from keras_din._io.images import (  # noqa: E402
    ImageDepthWarning,
    orient,
    output_suffix,
    read_image,
    write_image_atomic,
)
from keras_din.restore import ImageRestorer, check_tiling, restore_files  # noqa: E402

ICC = b"fake-icc-profile-bytes"


def _tiff_zoo(folder):
    """The TIFFs users reported failing, written by Pillow and tifffile: {name: (dtype, channels)}."""
    rng = np.random.default_rng(3)
    rgb8 = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    Image.fromarray(rgb8).save(folder / "rgb.tif")
    Image.fromarray(rgb8[..., 0]).save(folder / "grey.tif")
    Image.fromarray(rgb8).save(folder / "lzw.tif", compression="tiff_lzw")
    Image.fromarray(rgb8).save(folder / "deflate.tif", compression="tiff_adobe_deflate")
    Image.fromarray(rgb8).convert("CMYK").save(folder / "cmyk.tif", icc_profile=b"a-cmyk-profile")
    Image.fromarray(rgb16[..., 0]).save(folder / "grey16.tif")
    Image.fromarray(rgb8[..., 0].astype(np.float32) / 255).save(folder / "float.tif")
    tifffile.imwrite(folder / "rgb16.tif", rgb16, photometric="rgb", compression="zlib")
    rgba16 = np.dstack([rgb16, rgb16[..., :1]])
    tifffile.imwrite(folder / "rgba16.tif", rgba16, photometric="rgb", extrasamples=["unassalpha"])
    tifffile.imwrite(folder / "planar16.tif", np.moveaxis(rgb16, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(folder / "float_rgb.tif", rgb16.astype(np.float32) / 65535, photometric="rgb")
    return {
        "rgb": (np.uint8, 3), "grey": (np.uint8, 1), "lzw": (np.uint8, 3), "deflate": (np.uint8, 3),
        "cmyk": (np.uint8, 3), "grey16": (np.uint16, 1), "float": (np.float32, 1), "rgb16": (np.uint16, 3),
        "rgba16": (np.uint16, 4), "planar16": (np.uint16, 3), "float_rgb": (np.float32, 3),
    }  # fmt: skip


def test_tiffs_of_every_kind_are_restored_to_tiffs_at_their_depth(model, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    kinds = _tiff_zoo(source)
    out = tmp_path / "out"
    failures = restore_files(ImageRestorer(model, tile=None), [str(source)], out, progress=False, log=lambda *_: None)
    assert failures == []
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.tif" for name in kinds)  # no temporary left
    for name, (dtype, channels) in kinds.items():
        with tifffile.TiffFile(out / f"{name}.tif") as tif:
            page = tif.pages[0]
            written = page.asarray()
            compression = page.compression
        if page.axes == "SYX":
            written = np.moveaxis(written, 0, -1)
        assert written.dtype == dtype, name
        assert written.shape == ((10, 14) if channels == 1 else (10, 14, channels)), name
        # The file holds exactly what the model made from the full-depth samples.
        made = restore_array(model, read_image(source / f"{name}.tif")[0])
        np.testing.assert_array_equal(written, made, err_msg=name)
        if dtype == np.uint16:
            assert written.max() > 255, name
        # Uncompressed TIFF in, uncompressed out; a compressed one comes back deflate-compressed (lossless).
        compressed = name in ("lzw", "deflate", "rgb16")
        assert compression == (tifffile.COMPRESSION.ADOBE_DEFLATE if compressed else tifffile.COMPRESSION.NONE), name


def test_tiff_metadata_travels_without_the_tiff_layout_tags(tmp_path):
    rgb16 = np.random.default_rng(5).integers(0, 65536, (6, 4, 3), dtype=np.uint16)
    tifffile.imwrite(
        tmp_path / "deep.tif", rgb16, photometric="rgb", iccprofile=ICC, resolution=(300, 300), resolutionunit="INCH",
        extratags=[(0x013B, "s", 0, "A. Photographer", True)],  # tifffile also writes its {"shape": ...} description
    )  # fmt: skip
    Image.fromarray((rgb16 >> 8).astype(np.uint8)).save(
        tmp_path / "plain.tif", icc_profile=ICC, dpi=(300, 300), compression="tiff_lzw"
    )
    Image.fromarray((rgb16 >> 8).astype(np.uint8)).save(tmp_path / "bare.tif")
    for name in ("deep", "plain"):
        array, info = read_image(tmp_path / f"{name}.tif")
        big = array.repeat(2, 0).repeat(2, 1)
        write_image_atomic(big, tmp_path / "out" / f"{name}.tif", info=info)
        with Image.open(tmp_path / "out" / f"{name}.tif") as image:
            assert image.info.get("icc_profile") == ICC and tuple(image.info["dpi"]) == (300, 300), name
            assert image.size == (8, 12)
            assert 0x010E not in image.tag_v2  # no stale {"shape": [6, 4, 3]} from the input
            assert image.tag_v2.get(0x013B) == ("A. Photographer" if name == "deep" else None)
        eight = (big >> 8).astype(np.uint8) if big.dtype == np.uint16 else big
        write_image_atomic(eight, tmp_path / "out" / f"{name}.jpg", info=info)
        with Image.open(tmp_path / "out" / f"{name}.jpg") as image:
            exif = image.getexif()
            assert image.info.get("icc_profile") == ICC and image.size == (8, 12)
            assert not {0x0100, 0x0101, 0x0102, 0x0103, 0x0111, 0x0117, 0x010E} & set(exif)  # no layout tags
            assert exif.get(0x013B) == ("A. Photographer" if name == "deep" else None)
    array, info = read_image(tmp_path / "bare.tif")
    assert "dpi" not in info  # Pillow says dpi=(1, 1) for a TIFF without resolution: not carried as 1 dpi
    array, info = read_image(_cmyk_tiff(tmp_path))
    assert "icc_profile" not in info and array.shape[-1] == 3  # a CMYK profile does not describe the RGB result


def _cmyk_tiff(folder):
    path = folder / "cmyk.tif"
    Image.new("CMYK", (3, 2), (0, 50, 100, 0)).save(path, icc_profile=b"a-cmyk-profile")
    return path


def test_orientation_of_16_bit_tiffs_matches_pillows_for_8_bit(tmp_path):
    data = np.random.default_rng(6).integers(0, 65536, (3, 5, 3), dtype=np.uint16)
    image = Image.fromarray(np.arange(15, dtype=np.uint8).reshape(3, 5))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.info["exif"] = exif.tobytes()
        image._exif = None
        expected = np.asarray(ImageOps.exif_transpose(image))
        np.testing.assert_array_equal(orient(np.asarray(image), orientation), expected, err_msg=str(orientation))
        tag = [(0x0112, "H", 1, orientation, True)]
        tifffile.imwrite(tmp_path / "deep.tif", data, photometric="rgb", extratags=tag)
        tifffile.imwrite(tmp_path / "plain.tif", (data >> 8).astype(np.uint8), photometric="rgb", extratags=tag)
        deep, _ = read_image(tmp_path / "deep.tif")  # tifffile
        plain, _ = read_image(tmp_path / "plain.tif")  # Pillow's exif_transpose
        assert deep.dtype == np.uint16
        np.testing.assert_array_equal((deep >> 8).astype(np.uint8), plain, err_msg=str(orientation))


def test_16_bit_colour_to_png_warns_and_rounds_to_8_bits(tmp_path):
    colour = np.array([[[0, 128, 65535], [257, 32896, 65407]]], np.uint16)
    with pytest.warns(ImageDepthWarning, match="16-bit colour written with 8 bits.*greyscale only"):
        write_image_atomic(colour, tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as image:
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), [[[0, 0, 255], [1, 128, 255]]])
    grey = np.array([[0, 1000, 65535]], np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 16-bit greyscale PNG: kept, no warning
        write_image_atomic(grey, tmp_path / "g.png")
        write_image_atomic(np.array([[0.0, 0.5, 1.0]], np.float32), tmp_path / "f.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[0], grey)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png")[0], [[0, 32768, 65535]])


def test_tiling_options_are_checked_once_with_their_names(model):
    assert check_tiling("auto", 32) == "auto" and check_tiling("none", 99) is None and check_tiling(" 64 ", 0) == 64
    with pytest.raises(ValueError, match=r"^--overlap \(8\) must be smaller than --tile \(8\)"):
        check_tiling("8", 8, names=("--tile", "--overlap"))
    with pytest.raises(ValueError, match=r"^--tile must be a positive number of LR pixels.*got '0'"):
        check_tiling("0", 0, names=("--tile", "--overlap"))
    with pytest.raises(ValueError, match=r"^--tile must be .*got 'big'"):
        check_tiling("big", 0, names=("--tile", "--overlap"))
    with pytest.raises(ValueError, match=r"^overlap must be a whole number of LR pixels, 0 or more, got -1"):
        check_tiling(16, -1)
    with pytest.raises(ValueError, match=r"overlap \(192\) must be smaller than the automatic tile size \(192\)"):
        check_tiling("auto", 192)
    with pytest.raises(ValueError, match=r"overlap \(8\) must be smaller than tile \(8\)"):
        ImageRestorer(model, tile=8, overlap=8)  # at construction, not per image
    with pytest.raises(ValueError, match=r"overlap \(8\) must be smaller than tile \(8\)"):
        restore_array(model, np.zeros((20, 20, 3), np.uint8), tile=8, overlap=8)  # was "range() arg 3 must not be zero"


def test_output_format_must_be_a_name_not_a_path(model, tmp_path):
    assert output_suffix("PNG") == ".png" and output_suffix(".tiff") == ".tiff" and output_suffix("jpeg") == ".jpeg"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    for bad in ("./../../x.png", "../x", "png/", "gif", ""):
        with pytest.raises(ValueError, match="suffix must be one of png, jpg, jpeg, bmp, tif, tiff, webp"):
            restore_files(ImageRestorer(model), [str(tmp_path / "a.png")], tmp_path / "out", suffix=bad, progress=False)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_an_output_that_appears_while_encoding_is_not_replaced(tmp_path, monkeypatch):
    target = tmp_path / "out" / "x.png"
    original_save = Image.Image.save

    def save_then_lose_the_race(self, fp, *args, **kwargs):
        original_save(self, fp, *args, **kwargs)
        target.write_bytes(b"the other run's image")  # another process finishes first

    monkeypatch.setattr(Image.Image, "save", save_then_lose_the_race)
    with pytest.raises(FileExistsError, match="x.png' exists; pass overwrite=True"):
        write_image_atomic(np.zeros((4, 4, 3), np.uint8), target)
    assert target.read_bytes() == b"the other run's image"
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]  # the temporary file is gone
    monkeypatch.setattr(Image.Image, "save", original_save)
    write_image_atomic(np.zeros((4, 4, 3), np.uint8), target, overwrite=True)
    assert read_image(target)[0].shape == (4, 4, 3)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_concurrent_writers_to_one_name_leave_exactly_one_whole_file(tmp_path, suffix):
    target = tmp_path / f"shared{suffix}"
    images = [np.full((64, 64, 3), 30 * i, np.uint8) for i in range(6)]
    start, outcomes = threading.Barrier(len(images)), []

    def write(image):
        start.wait()
        try:
            write_image_atomic(image, target)
            outcomes.append("written")
        except FileExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(image,)) for image in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * (len(images) - 1) + ["written"]
    written = read_image(target)[0]
    assert any(np.array_equal(written, image) for image in images)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def _lzw_literals(data: bytes) -> bytes:
    """TIFF LZW (9-bit codes, MSB first) of `data` as literal codes only, a Clear code every 200 bytes."""
    codes = []
    for start in range(0, len(data), 200):
        codes += [256, *data[start : start + 200]]
    bits = "".join(format(code, "09b") for code in codes + [257])
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _write_lzw_rgb_tiff(path, array):
    """A little-endian one-strip LZW RGB TIFF, uint16 or float32 (tifffile writes LZW only with imagecodecs)."""
    import struct

    height, width, _ = array.shape
    bits, sample_format = array.dtype.itemsize * 8, 3 if array.dtype.kind == "f" else 1
    strip = _lzw_literals(array.astype(array.dtype.newbyteorder("<")).tobytes())
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, 5), (262, 3, 1, 2),
            (273, 4, 1, None), (277, 3, 1, 3), (278, 3, 1, height), (279, 4, 1, len(strip)), (284, 3, 1, 1),
            (339, 3, 3, None)]  # fmt: skip
    after_ifd = 8 + 2 + 12 * len(tags) + 4
    offsets = {258: after_ifd, 339: after_ifd + 6, 273: after_ifd + 12}
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", tag, kind, count, offsets.get(tag, value)) for tag, kind, count, value in tags
    )
    extra = struct.pack("<3H", bits, bits, bits) + struct.pack("<3H", *[sample_format] * 3)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + extra + strip)


def test_a_16_bit_lzw_tiff_without_imagecodecs_is_read_with_8_bits_and_says_so(tmp_path):
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("imagecodecs is installed: tifffile decodes LZW at full depth")
    data = np.random.default_rng(9).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    _write_lzw_rgb_tiff(tmp_path / "lzw16.tif", data)
    with pytest.warns(ImageDepthWarning, match="read with 8 bits per sample: tifffile cannot decode it .*LZW"):
        array, info = read_image(tmp_path / "lzw16.tif")
    np.testing.assert_array_equal(array, data >> 8)  # Pillow's reading: the high bytes
    _write_lzw_rgb_tiff(tmp_path / "lzw_float.tif", data.astype(np.float32) / 65535)
    with pytest.raises(ValueError, match=r"cannot decode this TIFF \(float32 samples, LZW compression"):
        read_image(tmp_path / "lzw_float.tif")  # Pillow cannot read float RGB at all: one clear error


def test_an_upscaled_image_keeps_its_printed_size(model, tmp_path):
    """The resolution travels scaled with the pixel count (×2 here): DPI in PNG, JPEG's JFIF and EXIF, TIFF."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    source = tmp_path / "in"
    source.mkdir()
    exif = Image.Exif()
    exif[0x011A], exif[0x011B], exif[0x0128] = 300.0, 150.0, 2  # X and Y resolution per inch
    Image.fromarray(pixels).save(source / "photo.jpg", dpi=(300, 150), exif=exif.tobytes(), quality=95)
    Image.fromarray(pixels).save(source / "scan.png", dpi=(72, 72))
    Image.fromarray(pixels).save(source / "page.tif", dpi=(200, 200))
    Image.fromarray(pixels).save(source / "bare.png")
    out = tmp_path / "out"
    restore_files(ImageRestorer(model, tile=None), [str(source)], out, progress=False, log=lambda *_: None)
    with Image.open(out / "photo.jpg") as image:
        assert image.size == (16, 12) and image.info["dpi"] == (600, 300)
        assert (image.getexif()[0x011A], image.getexif()[0x011B]) == (600, 300)
    with Image.open(out / "scan.png") as image:  # PNG stores dots per metre: 72 dpi is 2835, read back 72.009
        assert image.info["dpi"] == pytest.approx((144, 144), abs=0.05)
    with Image.open(out / "page.tif") as image:
        assert tuple(image.info["dpi"]) == (400, 400)
    with Image.open(out / "bare.png") as image:
        assert "dpi" not in image.info  # no resolution is made up

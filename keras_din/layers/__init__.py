"""DIN's building blocks, each a serializable Keras layer written on `keras.ops`."""

from keras_din.layers.asyca import AsyCA
from keras_din.layers.bilinear_upsample import BilinearUpsample
from keras_din.layers.interleaved_block import InterleavedBlock
from keras_din.layers.pixel_shuffle import pixel_shuffle
from keras_din.layers.rdb import RDB
from keras_din.layers.upsampler import Upsampler
from keras_din.layers.wrdb import WRDB

__all__ = ["RDB", "WRDB", "AsyCA", "InterleavedBlock", "Upsampler", "BilinearUpsample", "pixel_shuffle"]

"""Shared file utilities of keras-din, below the preset and application layers.

`atomic`: writing a file or a folder so that it is complete or absent. `images`: reading,
writing and listing image files. Neither imports Keras or any other part of keras-din.
"""

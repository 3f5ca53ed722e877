"""Maintainer tools of a keras-din source checkout (run from its top folder: `python -m tools.<name>`)."""

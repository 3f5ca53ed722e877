import sys

from keras_din.cli import main

sys.exit(main())

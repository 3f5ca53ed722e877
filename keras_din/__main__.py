from keras_din.cli import run

run()

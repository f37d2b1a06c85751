"""The ways the attribute models can run, importable without TensorFlow (command-line parsers need them at once).

auto: what the app runs — on a CPU int8 TFLite, else float TFLite, else tf.function, whichever first converts
and agrees with Keras; on a GPU tf.function. tflite-int8 / tflite / tf: exactly that engine, or an error.
"""

ENGINES: tuple[str, ...] = ("auto", "tflite-int8", "tflite", "tf")
ENGINE_HELP = "how the models run: auto (what the app runs: int8 TFLite on a CPU), tflite-int8, tflite (float32), tf"

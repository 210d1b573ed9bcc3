"""Export a trained svae-tf run for serving.

- `export.saved_model`: a SavedModel in TF Serving's layout (BASE/<version>/) with
  `encode`, `decode`, `sample`, `reconstruct` signatures and warmup requests.
- `export.tflite`: LiteRT (.tflite) decoder sampler and encoder, builtin ops only,
  float32 / float16 / dynamic-range int8.
- `export.serving_client`: TF Serving REST / gRPC request builders, and a local runner
  that executes them against the exported SavedModel with TensorFlow's own loader.
- `export.tflite_sample`: on-device style sampling with `ai_edge_litert` to a PNG grid.

The library (`svae_tf`) never imports this package; export rebuilds the model from a
run's `config.json` and newest checkpoint (`svae_tf.runs.load_model`).
"""

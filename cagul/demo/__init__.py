"""The demo bundle: its recipe and builder (`bundle`) and the full fine-tuning it runs
(`finetune`). Not part of the unlearning library: Retrain and the benchmarks import these
modules' public functions by name to train the way the demo bundle was trained."""

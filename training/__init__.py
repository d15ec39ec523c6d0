"""LoRA fine-tuning: config, data, the training entry point, jobs and the base-model registry."""

"""The base-model registry (GGUF -> safetensors cache) and safe loading, shared by pipeline, training and eval."""

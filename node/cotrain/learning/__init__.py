"""The learning layer: built-in models, local data, local training, evaluation, deterministic aggregation and
the safetensors file formats that carry weights between nodes. It knows nothing of chains or storage."""

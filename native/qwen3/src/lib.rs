//! Qwen3 model (placeholder until the model lands).

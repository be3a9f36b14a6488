"""Multimodal-LLM comparison: stratified samples, OpenAI-compatible client, response cache, parsing."""

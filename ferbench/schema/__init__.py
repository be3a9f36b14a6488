"""What a suite file can say, as plain pydantic data: no torch, no engine, no I/O.

Modules: ``llm`` (LLM endpoints, samples, run options) ...
"""

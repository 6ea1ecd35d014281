"""Headless engine: policy, tokens, broker, audit, pipe. Never imports textual or rich."""

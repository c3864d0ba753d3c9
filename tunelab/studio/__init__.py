"""tunelab studio: the OpenAI Files and Fine-tuning API, the serving engine and a web UI in one
local server. A shell over `tunelab train`, the serving app (tunelab.serve) and the data validator (see app.py)."""

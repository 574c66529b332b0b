"""Request and response schemas (msgspec Structs), fields in OpenAI's order, vLLM extras after.

Litestar decodes request bodies into these Structs and builds the served OpenAPI schema
from them. Unknown request fields are accepted (and logged by the routes), as OpenAI's
clients send fields that a given server may not know.
"""

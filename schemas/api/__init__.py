"""Request and answer bodies of the control plane's HTTP API (docs/api.md), shared by the api and the SDK."""

"""One router per part of docs/api.md."""

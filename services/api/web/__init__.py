"""The review web page: server-rendered page shells (templates/) whose plain JavaScript (static/) asks
the JSON API for the data with the reviewer's API key. The pages hold no data and need no key; every
fact comes from the /v1 routes, so the web layer has no logic of its own to keep in step."""

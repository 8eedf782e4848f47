"""gridbid's Python client: Sign-In with Ethereum and the portal's HTTP API, keys kept local."""

"""Lambda functions of the routing workflow (serialize -> classify -> filter -> route).

Kept import-free: each handler imports only what it needs, so a cold start stays short.
"""

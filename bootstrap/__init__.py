"""One-time CI/CD setup as a Pulumi program of its own (docs/ci.md, "One-time setup")."""

"""`cvloop` subcommands beyond the local stack: projects (Postgres directly) and the platform's
common actions over the SDK."""

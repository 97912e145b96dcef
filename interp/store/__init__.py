"""The DuckDB store: `db.Store` combines one mixin per entity (`thresholds`, `annotations`, `runs`, `jobs`, `chats`)
over the connection core (`core`, `schema`)."""

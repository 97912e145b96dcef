"""The store's schema: one SQL migration per version, applied in order by `StoreBase`.

A shipped migration is never edited (existing files have run it); a change appends one and
bumps SCHEMA_VERSION. Version 2 drops `samples` (never used) and `datasets`: dataset folders
are the source of truth (`interp.catalog`). Version 3 gives each threshold set its layer
(`interp.target.layers`; every set stored before is a conv1 set) and one default per layer.
"""

from __future__ import annotations

SCHEMA_VERSION = 3

# Migration i (0-based) takes the schema from version i to i + 1; later versions append.
MIGRATIONS: list[str] = [
    """
    CREATE SEQUENCE samples_id_seq;
    CREATE TABLE samples (
        id BIGINT PRIMARY KEY DEFAULT nextval('samples_id_seq'),
        source VARCHAR NOT NULL,            -- 'mnist' | 'synthetic' | 'upload' | 'drawing'
        split VARCHAR NOT NULL,
        source_index INTEGER,
        label INTEGER,
        pixels BLOB,                        -- 784 uint8 bytes, row-major [28, 28]
        path VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE threshold_sets (
        name VARCHAR PRIMARY KEY,
        thresholds JSON NOT NULL,           -- [8][4] floats
        notes VARCHAR NOT NULL DEFAULT '',
        is_default BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE SEQUENCE annotations_id_seq;
    CREATE TABLE annotations (
        id BIGINT PRIMARY KEY DEFAULT nextval('annotations_id_seq'),
        annotator VARCHAR NOT NULL,
        image_source VARCHAR NOT NULL,
        image_index INTEGER NOT NULL,
        counts JSON NOT NULL,               -- {shape: n}
        description VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now(),
        UNIQUE (annotator, image_source, image_index)
    );
    CREATE SEQUENCE ratings_id_seq;
    CREATE TABLE ratings (
        id BIGINT PRIMARY KEY DEFAULT nextval('ratings_id_seq'),
        rater VARCHAR NOT NULL,
        run_id VARCHAR,
        image_source VARCHAR NOT NULL,
        image_index INTEGER NOT NULL,
        prediction VARCHAR NOT NULL,
        verdict VARCHAR NOT NULL CHECK (verdict IN ('correct', 'partial', 'wrong')),
        per_shape JSON,
        comment VARCHAR NOT NULL DEFAULT '',
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE datasets (
        id VARCHAR PRIMARY KEY,             -- content hash
        name VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        threshold_set VARCHAR,
        encoder VARCHAR NOT NULL,
        n_train INTEGER NOT NULL,
        n_val INTEGER NOT NULL,
        n_test INTEGER NOT NULL,
        manifest JSON NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE runs (
        id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL CHECK (kind IN ('finetune', 'evaluate', 'baseline')),
        preset VARCHAR,
        config JSON NOT NULL,
        status VARCHAR NOT NULL,
        path VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE jobs (
        id VARCHAR PRIMARY KEY,
        run_id VARCHAR,
        backend VARCHAR NOT NULL,
        spec JSON NOT NULL,
        status VARCHAR NOT NULL,
        external_id VARCHAR,
        pid INTEGER,
        address VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now(),
        finished_at TIMESTAMP,
        message VARCHAR
    );
    CREATE TABLE predictions (
        run_id VARCHAR NOT NULL,
        eval_set VARCHAR NOT NULL,
        sample_index INTEGER NOT NULL,
        prompt_encoding VARCHAR,
        prediction VARCHAR NOT NULL,
        truth VARCHAR,
        parsed JSON
    );
    CREATE TABLE metrics (
        run_id VARCHAR NOT NULL,
        eval_set VARCHAR NOT NULL,
        metrics JSON NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, eval_set)
    );
    CREATE SEQUENCE conversations_id_seq;
    CREATE TABLE conversations (
        id BIGINT PRIMARY KEY DEFAULT nextval('conversations_id_seq'),
        title VARCHAR NOT NULL,
        image JSON,                         -- {source, index, pixels: [784 ints]}
        encoding VARCHAR,
        threshold_set VARCHAR,
        model VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE messages (
        conversation_id BIGINT NOT NULL,
        turn INTEGER NOT NULL,
        role VARCHAR NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        PRIMARY KEY (conversation_id, turn)
    );
    """,
    """
    DROP TABLE samples;
    DROP SEQUENCE samples_id_seq;
    DROP TABLE datasets;
    """,
    """
    ALTER TABLE threshold_sets ADD COLUMN layer VARCHAR NOT NULL DEFAULT 'conv1';
    """,
]
assert len(MIGRATIONS) == SCHEMA_VERSION

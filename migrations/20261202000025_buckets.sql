-- Upload buckets (the S3 source's counterpart): named buckets of versioned objects. Each bucket
-- has a data key of its own, wrapped by the root key like a pipeline's; every version of an
-- object is sealed with it in the artifact store, kept under the SHA-256 of its sealed bytes.
-- Names follow S3's rules (3-63 of lowercase letters, digits, '.' and '-'), so a name is already
-- canonical: no two spellings name one bucket.
CREATE TABLE buckets (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'),
    key_id      text NOT NULL,
    wrapped_key text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE bucket_objects (
    version_id  uuid PRIMARY KEY,
    bucket_id   uuid NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    object_key  text NOT NULL CHECK (char_length(object_key) BETWEEN 1 AND 1024),
    address     text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    -- The SHA-256 of the object's bytes, as S3's ETag is their MD5.
    etag        text NOT NULL,
    uploaded_by text NOT NULL,
    uploaded_at timestamptz NOT NULL
);
CREATE INDEX bucket_objects_by_key ON bucket_objects (bucket_id, object_key, uploaded_at DESC);

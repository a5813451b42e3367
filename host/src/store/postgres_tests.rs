//! Tests of `PgStore` alone: what only a shared store does.

//! external-dns flags.

//! The pull pipeline and the public API.

//! Image references: `docker://host[:port]/path[:tag][@sha256:…]` and the short forms people
//! type (`alpine` → `docker.io/library/alpine:latest`), normalised as Docker does.

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host with optional port, as Docker names it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/alpine`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when given.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    // filled in by the reference implementation
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let _ = s;
        todo!("reference parsing")
    }
}
